# Shared defaults for the native local stack; sourced by the other scripts.
# Every value can be overridden from the environment. Ports avoid the usual defaults
# (5432, 6379, 9092) so a machine's own services are never taken over.
ROOT=${SNAPLINE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LOCAL=${SNAPLINE_LOCAL:-$ROOT/.local}
LOGS=$LOCAL/logs
RUN=$LOCAL/run
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${PG_PORT:-15432}
PG_REPLICA_PORT=${PG_REPLICA_PORT:-15433}
REDIS_PORT=${REDIS_PORT:-16379}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
export DATABASE_URL=${DATABASE_URL:-postgresql://snapline:snapline@127.0.0.1:$PG_PORT/snapline}
# REPLICA=1 (make up REPLICA=1): a streaming replica of the local cluster, and the services' reads on it.
if [ "${REPLICA:-0}" = 1 ]; then
  export DATABASE_REPLICA_URL=${DATABASE_REPLICA_URL:-postgresql://snapline:snapline@127.0.0.1:$PG_REPLICA_PORT/snapline}
fi
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
export GATEWAY_URL=${GATEWAY_URL:-http://127.0.0.1:8080}
export JWT_KEYS_FILE=${JWT_KEYS_FILE:-$LOCAL/secrets/jwt-keys.json}
export MODEL_PATH=${MODEL_PATH:-$LOCAL/models/epwp.json}
mkdir -p "$LOGS" "$RUN"

log() { printf '[snapline] %s\n' "$*" >&2; }

# pid_alive FILE: true when FILE names a running process.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_port PORT SECONDS NAME: wait until something listens on 127.0.0.1:PORT.
wait_port() {
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  log "$3 did not open port $1 within $2 s; see $LOGS"
  return 1
}

# stop_pidfile FILE NAME: stop the process recorded in FILE (ours only), wait, remove FILE.
stop_pidfile() {
  local pid i
  if ! pid_alive "$1"; then rm -f "$1"; return 0; fi
  pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; log "stopped $2 (pid $pid)"; return 0; }
    sleep 0.2
  done
  log "$2 (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}

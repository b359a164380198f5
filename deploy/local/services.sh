#!/usr/bin/env bash
# Runs the five services natively in the background, each with a pid file and a log.
# Usage: services.sh start|stop|status|wait
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

SERVICES=(ingest query analytics live gateway)
declare -A PORTS=([gateway]=${GATEWAY_PORT:-8080} [ingest]=${INGEST_PORT:-8081} [query]=${QUERY_PORT:-8082}
                  [analytics]=${ANALYTICS_PORT:-8083} [live]=${LIVE_PORT:-8084})
PY=$ROOT/.venv/bin/python

start() {
  local name
  cd "$ROOT"
  # The gateway's signing keys: made once per installation, readable by its owner only.
  "$PY" -m services.gateway.keyset ensure "$JWT_KEYS_FILE"
  for name in "${SERVICES[@]}"; do
    if pid_alive "$RUN/svc-$name.pid"; then
      log "$name already running (pid $(cat "$RUN/svc-$name.pid"))"; continue
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/${PORTS[$name]}") 2>/dev/null; then
      log "port ${PORTS[$name]} for $name is taken by a process that is not ours; set ${name^^}_PORT"; exit 1
    fi
    # A simple command in the background: $! is nohup, which execs python, so the pid file
    # names the service process itself.
    LOG_JSON=true nohup "$PY" -m "services.$name" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/svc-$name.pid"
    log "started $name (pid $(cat "$RUN/svc-$name.pid")) on 127.0.0.1:${PORTS[$name]}, log $LOGS/$name.log"
  done
}

wait_ready() {
  local name i deadline=$((SECONDS + ${1:-120}))
  for name in "${SERVICES[@]}"; do
    until curl -fs -o /dev/null "http://127.0.0.1:${PORTS[$name]}/readyz"; do
      if ! pid_alive "$RUN/svc-$name.pid"; then
        log "$name exited; last lines of $LOGS/$name.log:"; tail -n 20 "$LOGS/$name.log" >&2; exit 1
      fi
      if ((SECONDS > deadline)); then
        log "$name is not ready: $(curl -sS "http://127.0.0.1:${PORTS[$name]}/readyz" 2>&1)"; exit 1
      fi
      sleep 0.3
    done
  done
  log "all services ready"
}

stop() {
  local i name
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    name=${SERVICES[$i]}
    stop_pidfile "$RUN/svc-$name.pid" "$name"
  done
}

status() {
  local name state
  for name in "${SERVICES[@]}"; do
    if pid_alive "$RUN/svc-$name.pid"; then
      state=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORTS[$name]}/readyz" || true)
      echo "$name: running (pid $(cat "$RUN/svc-$name.pid")), readyz $state, http://127.0.0.1:${PORTS[$name]}"
    else
      echo "$name: stopped"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  wait) wait_ready "${2:-120}" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|wait|stop|status" >&2; exit 2 ;;
esac

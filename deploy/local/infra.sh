#!/usr/bin/env bash
# Native local infrastructure for hosts without a Docker engine:
# Apache Kafka (KRaft, one broker) from Maven Central, PostgreSQL and Redis from Debian packages,
# each as the project's own process with its data under .local/.
# Usage: infra.sh install|browser|start|stop|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

KAFKA_HOME=$LOCAL/kafka
PG_DATA=$LOCAL/pg/data
PG_SOCK=$LOCAL/pg/run
REDIS_DIR=$LOCAL/redis

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_packages() {
  local missing=()
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  # promtool checks and unit-tests the alert rules (deploy/observability/) in `make test`.
  command -v promtool >/dev/null || missing+=(prometheus)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$LOGS/apt.log" 2>&1
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1
    # The packages start the machine's default instances; those are not ours and stay as they are.
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  command -v java >/dev/null || { log "java (17+) is required for Kafka"; exit 1; }
  if [ ! -f "$KAFKA_HOME/lib/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    command -v mvn >/dev/null || { log "maven is required to fetch Kafka"; exit 1; }
    log "fetching Apache Kafka $KAFKA_VERSION from Maven Central"
    rm -rf "$KAFKA_HOME/lib"
    mvn -q -B -f "$ROOT/deploy/local/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/lib" \
      >"$LOGS/mvn.log" 2>&1 || { log "maven failed; see $LOGS/mvn.log"; exit 1; }
  fi
}

# The browser tests (tests/browser) drive Debian's chromium headless; only `make test` needs it.
install_browser() {
  command -v chromium >/dev/null && return
  log "installing chromium from Debian packages (for the browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; } >"$LOGS/apt-browser.log" 2>&1 ||
    { log "chromium could not be installed; see $LOGS/apt-browser.log"; exit 1; }
}

kafka_config() {
  mkdir -p "$KAFKA_HOME/config" "$KAFKA_HOME/data"
  sed -e "s#@DATA@#$KAFKA_HOME/data#" -e "s#@PORT@#$KAFKA_PORT#" \
      -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#" \
      "$ROOT/deploy/local/kafka/server.properties" >"$KAFKA_HOME/config/server.properties"
  cp "$ROOT/deploy/local/kafka/log4j2.properties" "$KAFKA_HOME/config/log4j2.properties"
}

kafka_tool() {
  java -Xmx256m -Dlog4j2.configurationFile="$KAFKA_HOME/config/log4j2.properties" \
    -cp "$KAFKA_HOME/lib/*" "$@"
}

start_kafka() {
  if pid_alive "$RUN/kafka.pid"; then log "kafka already running (pid $(cat "$RUN/kafka.pid"))"; return; fi
  kafka_config
  if [ ! -f "$KAFKA_HOME/data/meta.properties" ]; then
    log "formatting Kafka storage (once)"
    local cluster_id
    cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid)
    kafka_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$KAFKA_HOME/config/server.properties" >"$LOGS/kafka-format.log" 2>&1
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT"
  # nohup execs java, so $! is the broker's own pid.
  nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_HOME/config/log4j2.properties" \
    -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$KAFKA_HOME/config/server.properties" \
    >"$LOGS/kafka.log" 2>&1 </dev/null &
  echo $! >"$RUN/kafka.pid"
}

start_postgres() {
  if [ -f "$PG_DATA/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    log "postgresql already running"; return
  fi
  mkdir -p "$PG_DATA" "$PG_SOCK"
  chown -R postgres:postgres "$LOCAL/pg" 2>/dev/null || true
  chmod 700 "$PG_DATA"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initialising the PostgreSQL cluster (once)"
    local pwfile=$LOCAL/pg/pw
    echo snapline >"$pwfile"; chown postgres "$pwfile" 2>/dev/null || true
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U snapline --pwfile="$pwfile" \
      --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log" 2>&1
    rm -f "$pwfile"
    cat "$ROOT/deploy/local/postgresql.conf" >>"$PG_DATA/postgresql.conf"
  fi
  log "starting postgresql on 127.0.0.1:$PG_PORT"
  touch "$LOGS/postgresql.log"; chown postgres "$LOGS/postgresql.log" 2>/dev/null || true
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgresql.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1" start >/dev/null
  head -n 1 "$PG_DATA/postmaster.pid" >"$RUN/postgres.pid"
  as_postgres "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U snapline -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'snapline'" | grep -q 1 ||
    as_postgres "$PG_BIN/createdb" -h "$PG_SOCK" -p "$PG_PORT" -U snapline snapline
}

start_redis() {
  if pid_alive "$RUN/redis.pid"; then log "redis already running (pid $(cat "$RUN/redis.pid"))"; return; fi
  mkdir -p "$REDIS_DIR"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  # hash-max-listpack-entries 128: a game's hashes (ingest claims, live revisions) hold a few
  # hundred fields; as listpacks (up to 512 by default) every field read or write scans the
  # whole hash, which doubled the claim script's time in the ingest benchmark.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" --daemonize yes \
    --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log" --appendonly yes --save "" \
    --protected-mode no --hash-max-listpack-entries 128
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$RUN/redis.pid" ] && break; sleep 0.1; done
}

# A streaming replica of the cluster above (REPLICA=1): pg_basebackup -R once, then a hot standby
# on PG_REPLICA_PORT. Reads that tolerate lag go to it (DATABASE_REPLICA_URL, env.sh); when it is
# stopped they go to the primary (shared.db.Pools.read).
PG_REPLICA_DATA=$LOCAL/pg/replica
start_replica() {
  if [ -f "$PG_REPLICA_DATA/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_REPLICA_DATA" status >/dev/null 2>&1; then
    log "postgresql replica already running"; return
  fi
  if [ ! -f "$PG_REPLICA_DATA/PG_VERSION" ]; then
    log "making the streaming replica (pg_basebackup -R, once)"
    rm -rf "$PG_REPLICA_DATA"; mkdir -p "$PG_REPLICA_DATA"; chown postgres:postgres "$PG_REPLICA_DATA" 2>/dev/null || true
    chmod 700 "$PG_REPLICA_DATA"
    as_postgres env PGPASSWORD=snapline "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U snapline \
      -D "$PG_REPLICA_DATA" -R -X stream --checkpoint=fast >"$LOGS/pg_basebackup.log" 2>&1
  fi
  log "starting postgresql replica on 127.0.0.1:$PG_REPLICA_PORT"
  touch "$LOGS/postgresql-replica.log"; chown postgres "$LOGS/postgresql-replica.log" 2>/dev/null || true
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_REPLICA_DATA" -l "$LOGS/postgresql-replica.log" -w -t 60 \
    -o "-p $PG_REPLICA_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1" start >/dev/null
  head -n 1 "$PG_REPLICA_DATA/postmaster.pid" >"$RUN/postgres-replica.pid"
}

stop_replica() {
  if [ -f "$PG_REPLICA_DATA/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_REPLICA_DATA" -m fast -w stop >/dev/null 2>&1 && log "stopped postgresql replica" || true
  fi
  rm -f "$RUN/postgres-replica.pid"
}

stop_postgres() {
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 && log "stopped postgresql" || true
  fi
  rm -f "$RUN/postgres.pid"
}

status() {
  local name
  for name in kafka redis postgres postgres-replica; do
    if pid_alive "$RUN/$name.pid"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  install) install_packages ;;
  browser) install_browser ;;
  start)
    install_packages
    start_postgres; start_redis; start_kafka
    wait_port "$PG_PORT" 60 postgresql; wait_port "$REDIS_PORT" 30 redis; wait_port "$KAFKA_PORT" 90 kafka
    if [ "${REPLICA:-0}" = 1 ]; then start_replica; wait_port "$PG_REPLICA_PORT" 60 "postgresql replica"; fi
    ;;
  stop) stop_pidfile "$RUN/kafka.pid" kafka; stop_pidfile "$RUN/redis.pid" redis; stop_replica; stop_postgres ;;
  status) status ;;
  *) echo "usage: $0 install|browser|start|stop|status" >&2; exit 2 ;;
esac

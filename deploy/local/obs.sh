#!/usr/bin/env bash
# Prometheus, natively (Debian's prometheus package), scraping the five local services every 5 s
# with the alert rules of deploy/observability/. Usage: obs.sh start|stop|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PROM_PORT=${PROM_PORT:-19090}
PROM_DIR=$LOCAL/prometheus

config() {
  mkdir -p "$PROM_DIR/data"
  cat >"$PROM_DIR/prometheus.yml" <<YAML
# Written by deploy/local/obs.sh; the rules are the repository's own.
global:
  scrape_interval: 5s
  evaluation_interval: 15s
rule_files:
  - $ROOT/deploy/observability/alerts.yml
scrape_configs:
  - job_name: snapline
    static_configs:
      - targets: ["127.0.0.1:${GATEWAY_PORT:-8080}"]
        labels: {service: gateway}
      - targets: ["127.0.0.1:${INGEST_PORT:-8081}"]
        labels: {service: ingest}
      - targets: ["127.0.0.1:${QUERY_PORT:-8082}"]
        labels: {service: query}
      - targets: ["127.0.0.1:${ANALYTICS_PORT:-8083}"]
        labels: {service: analytics}
      - targets: ["127.0.0.1:${LIVE_PORT:-8084}"]
        labels: {service: live}
YAML
}

start() {
  command -v prometheus >/dev/null || { log "prometheus is not installed (apt-get install prometheus)"; exit 1; }
  if pid_alive "$RUN/prometheus.pid"; then
    log "prometheus already running (pid $(cat "$RUN/prometheus.pid"))"; return
  fi
  config
  promtool check config "$PROM_DIR/prometheus.yml" >/dev/null
  nohup prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
    --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROM_PORT" \
    >>"$LOGS/prometheus.log" 2>&1 </dev/null &
  echo $! >"$RUN/prometheus.pid"
  wait_port "$PROM_PORT" 30 prometheus
  log "prometheus (pid $(cat "$RUN/prometheus.pid")) on http://127.0.0.1:$PROM_PORT: targets /targets, alerts /alerts"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pidfile "$RUN/prometheus.pid" prometheus ;;
  status) pid_alive "$RUN/prometheus.pid" && log "prometheus running (pid $(cat "$RUN/prometheus.pid"))" || log "prometheus stopped" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

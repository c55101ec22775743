#!/usr/bin/env bash
# Runs the bot for the app: trains if the data changed, starts the action server in the
# background and `rasa run --enable-api` in the foreground; stopping rasa stops the actions too.
# Ports: RASA_PORT (5005), ACTIONS_PORT (5055; keep ACTION_SERVER_URL in step). Redis settings: env.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$BOT_DIR/scripts/train_if_changed.sh"
cd "$BOT_DIR"
"$RASA" run actions --actions actions --port "${ACTIONS_PORT:-5055}" &
actions_pid=$!
trap 'kill "$actions_pid" 2>/dev/null' EXIT
"$RASA" run --enable-api -i "${RASA_HOST:-127.0.0.1}" --port "${RASA_PORT:-5005}" --model models/linli.tar.gz \
  --endpoints endpoints.yml --credentials credentials.yml

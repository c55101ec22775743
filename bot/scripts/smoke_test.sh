#!/usr/bin/env bash
# Live check of the whole bot: starts the fake app (tests/fake_app.py), the action server and
# `rasa run` on loopback ports, plays tests/smoke_conversations.py, and stops what it started.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$BOT_DIR"
FAKE_PORT="${SMOKE_FAKE_PORT:-5199}" ACTIONS_PORT="${SMOKE_ACTIONS_PORT:-5155}" RASA_PORT="${SMOKE_RASA_PORT:-5105}"
export LINLI_API_URL="http://127.0.0.1:$FAKE_PORT" BOT_SERVICE_TOKEN="smoke-token" LINLI_TODAY="2025-03-12"
export ACTION_SERVER_URL="http://127.0.0.1:$ACTIONS_PORT/webhook"
mkdir -p results
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

# 全科 on Thursday 2025-03-13 is fully booked: the waitlist conversation.
"$PYTHON" tests/fake_app.py --port "$FAKE_PORT" --token "$BOT_SERVICE_TOKEN" --full 全科:2025-03-13 \
  > results/smoke_fake_app.log 2>&1 &
pids+=($!)
"$RASA" run actions --actions actions --port "$ACTIONS_PORT" > results/smoke_actions.log 2>&1 &
pids+=($!)
"$RASA" run --enable-api -i 127.0.0.1 --port "$RASA_PORT" --model models/linli.tar.gz \
  --endpoints tests/endpoints.smoke.yml --credentials credentials.yml > results/smoke_rasa.log 2>&1 &
pids+=($!)

for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$RASA_PORT/status" > /dev/null 2>&1 \
    && curl -sf "http://127.0.0.1:$ACTIONS_PORT/health" > /dev/null 2>&1 && break
  sleep 2
done
if ! curl -sf "http://127.0.0.1:$RASA_PORT/status" > /dev/null 2>&1; then
  echo "smoke: rasa did not start"; tail -20 results/smoke_rasa.log; exit 1
fi
"$PYTHON" tests/smoke_conversations.py "http://127.0.0.1:$RASA_PORT"

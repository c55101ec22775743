#!/usr/bin/env bash
# Makes bot/.venv exist and match requirements.lock.txt + requirements-extra.txt (both --no-deps,
# so every dependency is pinned in those files). Reinstalls only when a requirements file changed.
set -euo pipefail
BOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$BOT_DIR/.venv"
STAMP="$VENV/.linli-requirements.sha256"
wanted="$(cat "$BOT_DIR/requirements.lock.txt" "$BOT_DIR/requirements-extra.txt" | sha256sum | cut -d' ' -f1)"

if [[ -x "$VENV/bin/rasa" && -f "$STAMP" && "$(cat "$STAMP")" == "$wanted" ]]; then
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating $VENV"
  python3 -m venv "$VENV"
fi
echo "installing the bot's pinned requirements into $VENV"
# The lock pins rasa's whole tree; rasa 3.6 declares python<3.11, which it runs on here.
"$VENV/bin/pip" install --quiet --no-deps --ignore-requires-python -r "$BOT_DIR/requirements.lock.txt"
"$VENV/bin/pip" install --quiet --no-deps -r "$BOT_DIR/requirements-extra.txt"
echo "$wanted" > "$STAMP"

#!/usr/bin/env bash
# Trains bot/models/linli.tar.gz only when what the model is made of changed: a hash of
# config.yml, domain.yml, data/ and jieba_dict/ (plus the pinned requirements) is kept beside it.
# FORCE_TRAIN=1 trains anyway.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$BOT_DIR/scripts/ensure_venv.sh"
cd "$BOT_DIR"

inputs_hash() {
  find config.yml domain.yml data jieba_dict requirements.lock.txt requirements-extra.txt -type f -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

MODEL=models/linli.tar.gz
STAMP=models/linli.inputs.sha256
hash="$(inputs_hash)"
if [[ -z "${FORCE_TRAIN:-}" && -f "$MODEL" && -f "$STAMP" && "$(cat "$STAMP")" == "$hash" ]]; then
  echo "bot model is up to date (inputs $hash)"
  exit 0
fi

mkdir -p models
echo "training the bot model (log: bot/models/train.log)"
start=$(date +%s)
if ! "$RASA" train --fixed-model-name linli --out models > models/train.log 2>&1; then
  grep -v -E "it/s|Epochs:" models/train.log | tail -40
  echo "rasa train failed" >&2
  exit 1
fi
echo "$hash" > "$STAMP"
echo "bot model trained in $(( $(date +%s) - start ))s -> bot/$MODEL"

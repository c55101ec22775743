#!/usr/bin/env bash
# The bot's whole test suite: data validation, (re)training when needed, conversation tests
# (tests/test_stories.yml), the held-out NLU evaluation (tests/test_nlu.yml), the action tests and
# a live smoke test (BOT_SMOKE=0 skips it). Exits non-zero if any part fails.
# NLU_MIN_ACCURACY (default 0.95) is the accuracy gate.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$BOT_DIR/scripts/ensure_venv.sh" || exit 1
cd "$BOT_DIR"
mkdir -p results
failures=()
step() { echo; echo "== bot: $1"; }

step "rasa data validate"
"$RASA" data validate > results/validate.log 2>&1 || failures+=("rasa data validate")
"$PYTHON" scripts/check_validate_log.py results/validate.log || failures+=("validation warnings")

step "train if changed"
if ! scripts/train_if_changed.sh; then
  echo "bot: training failed, nothing else to test" >&2
  exit 1
fi

step "conversation tests + held-out NLU evaluation (rasa test)"
rm -rf results/core results/nlu
start=$(date +%s)
# --e2e: each user text goes through NLU (intent and entities must match the story), then every
# next action must be predicted. Actions are predicted, not executed: no action server is needed.
"$RASA" test core --e2e --model models/linli.tar.gz --stories tests/test_stories.yml --out results/core \
  --no-plot > results/test_core.log 2>&1
correct="$(grep -m1 -oP 'Correct:\s+\K\d+ / \d+' results/test_core.log || true)"
echo "  test stories correct: ${correct:-none}"
total="${correct##*/ }"
if [[ -z "$correct" || "${correct%% /*}" != "$total" ]]; then
  grep -v -E "it/s" results/test_core.log | grep -E "ERROR|Error|rror:" | tail -10
  grep -v "^#" results/core/failed_test_stories.yml 2>/dev/null | head -80
  failures+=("test stories")
fi
echo "  ($(( $(date +%s) - start ))s)"

start=$(date +%s)
if "$RASA" test nlu --model models/linli.tar.gz --nlu tests/test_nlu.yml --out results/nlu --no-plot \
     > results/test_nlu.log 2>&1; then
  "$PYTHON" scripts/nlu_report.py results/nlu --min-accuracy "${NLU_MIN_ACCURACY:-0.95}" \
    || failures+=("NLU accuracy below goal")
else
  grep -v -E "it/s" results/test_nlu.log | tail -20
  failures+=("rasa test nlu")
fi
echo "  ($(( $(date +%s) - start ))s)"

step "action tests (pytest, against a local fake of the app's API)"
"$PYTHON" -m pytest -q -p no:cacheprovider tests || failures+=("action tests")

if [[ "${BOT_SMOKE:-1}" != "0" ]]; then
  step "live smoke test (rasa run + action server + fake app)"
  scripts/smoke_test.sh || failures+=("smoke test")
fi

echo
if (( ${#failures[@]} )); then
  printf 'bot tests FAILED: %s\n' "${failures[*]}"
  exit 1
fi
echo "bot tests passed"

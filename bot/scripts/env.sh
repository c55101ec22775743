# Sourced by the bot scripts: environment with defaults for rasa and the action server.
# Rasa expands ${VAR} in endpoints.yml but has no defaults, so they are set here.
BOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BOT_DIR
export RASA_TELEMETRY_ENABLED=false
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export ACTION_SERVER_URL="${ACTION_SERVER_URL:-http://127.0.0.1:5055/webhook}"
export BOT_REDIS_HOST="${BOT_REDIS_HOST:-127.0.0.1}"
export BOT_REDIS_PORT="${BOT_REDIS_PORT:-6379}"
export BOT_REDIS_PASSWORD="${BOT_REDIS_PASSWORD:-}"
export BOT_TRACKER_REDIS_DB="${BOT_TRACKER_REDIS_DB:-2}"
export BOT_LOCK_REDIS_DB="${BOT_LOCK_REDIS_DB:-3}"
export LINLI_API_URL="${LINLI_API_URL:-http://127.0.0.1:5000}"
export BOT_SERVICE_TOKEN="${BOT_SERVICE_TOKEN:-}"
RASA="$BOT_DIR/.venv/bin/rasa"
PYTHON="$BOT_DIR/.venv/bin/python"

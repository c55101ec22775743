# Linli: `make run` brings the whole stack up on a laptop; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
export RASA_TELEMETRY_ENABLED := false
export FLASK_APP := wsgi

# make run: SQLite under instance/ and a local Redis unless DATABASE_URL / REDIS_URL say otherwise.
# With no real WeChat/Twilio accounts, the real clients talk to the local stub servers (Procfile).
RUN_ENV := DATABASE_URL=$${DATABASE_URL:-sqlite:///linli.db} REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	SIMULATOR_ENABLED=$${SIMULATOR_ENABLED:-true} BOT_SERVICE_TOKEN=$${BOT_SERVICE_TOKEN:-dev-bot-token} \
	WECHAT_APP_ID=$${WECHAT_APP_ID:-wxlinlidev0000001} WECHAT_SECRET=$${WECHAT_SECRET:-linli-dev-wechat-secret} \
	WECHAT_API_BASE=$${WECHAT_API_BASE:-http://127.0.0.1:8101/cgi-bin/} \
	TWILIO_ACCOUNT_SID=$${TWILIO_ACCOUNT_SID:-AC00000000000000000000000000000dev} \
	TWILIO_AUTH_TOKEN=$${TWILIO_AUTH_TOKEN:-linli-dev-twilio-token} TWILIO_FROM=$${TWILIO_FROM:-+8610000000000} \
	TWILIO_API_BASE=$${TWILIO_API_BASE:-http://127.0.0.1:8102}
# make test: the machine's PostgreSQL and Redis (CI sets the same).
TEST_ENV := DATABASE_URL=$${DATABASE_URL:-postgresql://root@127.0.0.1:5432/test} \
	TEST_REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/9}

.PHONY: run test test-app test-bot test-cluster cluster-deps venv bot-venv bot-model browser nginx migrate seed clean bench

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# The bot's own virtualenv from its fully pinned lock (Rasa 3.6 declares Python < 3.11 but runs on
# 3.11, hence --no-deps); the script reinstalls only when a requirements file changed.
bot-venv:
	bash bot/scripts/ensure_venv.sh

bot-model: bot-venv
	bash bot/scripts/train_if_changed.sh

# Debian's Chromium and CJK fonts for the browser tests (Playwright's own download does not work here).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; \
	fi

# nginx in front of the production gunicorn setup (deploy/), for tests/integration/test_production_setup.py.
nginx:
	@command -v nginx >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)

# The multi-host harness (tests/cluster/): network namespaces (iproute2; root), nginx as the balancer, socat as the
# database host's relay, redis-server as the Redis host.
cluster-deps: nginx
	@if ! command -v socat >/dev/null || ! command -v ip >/dev/null || ! command -v redis-server >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat iproute2 redis-server; \
	fi

migrate: venv
	$(RUN_ENV) $(FLASK) db upgrade

seed: migrate
	$(RUN_ENV) $(FLASK) seed-demo

run: venv bot-model
	@mkdir -p instance
	$(RUN_ENV) $(FLASK) dev-redis
	$(RUN_ENV) $(FLASK) db upgrade
	$(RUN_ENV) $(FLASK) seed-demo
	@echo ""
	@echo "  Resident simulator:  http://127.0.0.1:5000/console/simulator"
	@echo "  Staff console:       http://127.0.0.1:5000/console   (staff / linli-staff, admin / linli-admin)"
	@echo "  API docs:            http://127.0.0.1:5000/docs     (OpenAPI: /openapi.json, health: /healthz)"
	@echo ""
	$(RUN_ENV) $(VENV)/bin/honcho start -f Procfile

test: venv bot-venv browser nginx cluster-deps
	$(MAKE) test-app
	$(MAKE) test-bot

test-app: venv
	$(TEST_ENV) $(VENV)/bin/pytest -q --ignore=tests/bot --ignore=tests/cluster

test-bot: venv bot-model
	bash bot/scripts/test_bot.sh
	$(TEST_ENV) $(VENV)/bin/pytest -q tests/bot
	$(TEST_ENV) $(VENV)/bin/pytest -q -s -m "not cluster" tests/cluster

# The cluster harness's full form: longer traffic under the same faults, and the bot's throughput with 1 and 2 Rasa
# servers (docs/deploy.md). Its short form runs in `make test` (test-bot: it needs the trained model).
test-cluster: venv cluster-deps bot-model
	$(TEST_ENV) $(VENV)/bin/pytest -q -s -m cluster tests/cluster

bench: venv nginx
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	@for script in bench/*.py; do echo "== $$script"; $(TEST_ENV) $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) bot/.venv instance bot/models

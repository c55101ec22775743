"""gunicorn in production, behind deploy/nginx.conf: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Sync workers, one request at a time each. nginx passes a request on only once it has it whole, on a fresh
connection, and a free worker accepts it: 20 senders writing at once share the CPUs evenly. Threaded workers
keep each keep-alive connection for its life, so one worker ends up with more than its share and its requests
make the tail (docs/channels.md, issue 3: p99 35-37 ms against 60-70 ms at 20 senders back to back).

Without nginx in front (`make run`, where browsers connect directly) keep the Procfile's threaded workers: a
sync worker would wait on whatever an idle or slow connection sends. A webhook holds its worker while it waits
for the bot; app/services/bot_wait.py keeps that short while the bot is slow.
"""
import multiprocessing
import os

bind = os.environ.get("WEB_BIND", "127.0.0.1:5000")
worker_class = "sync"
# Three per core: measured best at 4-6 on 2 cores (8 and 10 lost to switching); spare ones cover bot waits. At
# most 12 by default: each process keeps its own database connections (PostgreSQL allows 100 by default).
workers = int(os.environ.get("WEB_CONCURRENCY", min(3 * multiprocessing.cpu_count(), 12)))
timeout = 30  # a worker busy this long on one request is restarted: far above a webhook's wait for the bot (4 s)
graceful_timeout = 30
# nginx (deploy/nginx.conf) is the one proxy in front: the app takes the client's address from the X-Forwarded-For
# nginx sets, so per-address limits are per client (app/core/config.py). Set it in the environment to change it.
raw_env = [f"TRUSTED_PROXY_HOPS={os.environ.get('TRUSTED_PROXY_HOPS', '1')}"]

"""Old home of the RQ jobs (until 2026-12). Jobs now live beside their domain, in `app/services/<domain>/jobs.py`,
and are queued by name through `app.core.tasks`. The modules here keep the old import paths of the job functions
for one release, so that jobs already queued in Redis under those paths still run after an upgrade; nothing in
the app imports them."""

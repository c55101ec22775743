"""Flask CLI commands: the RQ worker, the ticker that enqueues sweeps, the reports' rollup and the demo seed."""
from __future__ import annotations

import click
from flask import Flask


def register(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option("--queues", default="escalation,outbound,default", show_default=True)
    @click.option("--burst", is_flag=True, help="Stop when the queues are empty (tests).")
    def worker(queues: str, burst: bool):
        """Run an RQ worker with its scheduler (for enqueue_at / enqueue_in jobs)."""
        from app.core.worker import build_worker

        build_worker(app, tuple(q.strip() for q in queues.split(",") if q.strip())).work(
            with_scheduler=True, burst=burst
        )

    @app.cli.command("ticker")
    @click.option("--interval", default=1.0, show_default=True)
    def ticker(interval: float):
        """Enqueue the periodic sweeps (outbox, help alerts, SLA, reminders) on time."""
        from app.core.tasks import run_ticker

        run_ticker(app, interval=interval)

    @app.cli.command("dev-redis")
    def dev_redis():
        """Make sure Redis answers at REDIS_URL, starting a local server if needed (make run)."""
        import os

        from app.devserver import ensure_local_redis

        click.echo("redis: " + ensure_local_redis(app.config["REDIS_URL"], os.path.join(app.instance_path, "redis")))

    @app.cli.command("rollup-reports")
    @click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="Recompute from this Shanghai day on (default: the last days, or everything the first time).")
    @click.option("--full", is_flag=True, help="Recompute every day (the backfill).")
    def rollup_reports(since, full: bool):
        """Backfill or refresh the conversation-day rollup of the volume and bot reports."""
        from app.services.reports import rollup

        result = rollup.refresh(since=since.date() if since else None, full=full)
        first = result.first_day.isoformat() if result.first_day else "the first message"
        click.echo(f"{rollup.NAME}: {result.rows} rows recomputed from {first}; "
                   f"complete before {result.complete_before.isoformat()}")

    @app.cli.command("seed-demo")
    def seed_demo_command():
        """Seed the demo street, hospital, residents and staff (once)."""
        from app.seed import seed_demo

        click.echo("demo data seeded" if seed_demo() else "demo data already present")

"""Flask CLI commands: the RQ worker, the ticker that enqueues sweeps, the reports' rollup, the demo seed and
staff accounts."""
from __future__ import annotations

import os
import sys

import click
from flask import Flask

# Where `flask create-staff` takes the password from when run unattended (a prompt otherwise).
STAFF_PASSWORD_ENV = "LINLI_STAFF_PASSWORD"


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
        """Seed the demo street, hospital, residents and staff (once); refused in production."""
        from app.core.errors import DomainError
        from app.seed import seed_demo

        try:
            seeded = seed_demo()
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo("demo data seeded" if seeded else "demo data already present")

    @app.cli.command("create-staff")
    @click.option("--username", required=True)
    @click.option("--street", "street_code", required=True, help="The code of the street the account works for.")
    @click.option("--street-name", default=None,
                  help="Create the street with this name when none has the code (a fresh deployment).")
    @click.option("--display-name", default=None, help="The name the console shows (default: the username).")
    @click.option("--admin", is_flag=True, help="A team lead (role admin) of the street.")
    @click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
    def create_staff_command(username: str, street_code: str, street_name: str | None, display_name: str | None,
                             admin: bool, password_stdin: bool):
        """Create a staff account, such as a deployment's first team lead.

        The password is prompted for, or taken from $LINLI_STAFF_PASSWORD or --password-stdin for automation;
        never from an argument, which would be kept in shell history and shown by `ps`."""
        from app.core.errors import DomainError
        from app.services import staff

        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif os.environ.get(STAFF_PASSWORD_ENV):
            password = os.environ[STAFF_PASSWORD_ENV]
        else:
            password = click.prompt(f"Password (at least {staff.MIN_PASSWORD_LENGTH} characters)", hide_input=True,
                                    confirmation_prompt=True)
        try:
            member = staff.create_staff(username=username, password=password, street_code=street_code, admin=admin,
                                        display_name=display_name, street_name=street_name)
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"created {member.role} {member.username!r} (id {member.id}) of street "
                   f"{member.street.code} ({member.street.name})")

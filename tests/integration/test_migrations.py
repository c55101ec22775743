"""The migrations build the schema the models describe, up and down, on PostgreSQL and SQLite."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import models  # noqa: F401  (registers every table on the metadata)
from app.core.extensions import db
from tests.conftest import TEST_DATABASE_URL, make_test_app

MODEL_TABLES = {t.name for t in db.metadata.sorted_tables}


def _scratch_postgres_url() -> str:
    """A database of its own, so dropping everything never disturbs the other tests' schema."""
    url = make_url(TEST_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    scratch = f"{url.database}_migration_check"  # per test database, so parallel suites never share it
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{scratch}"'))
    admin.dispose()
    return url.set(database=scratch).render_as_string(hide_password=False)


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_app(request, tmp_path):
    if request.param == "postgresql":
        if not TEST_DATABASE_URL.startswith("postgres"):
            pytest.skip("DATABASE_URL is not PostgreSQL")
        url = _scratch_postgres_url()
    else:
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    app = make_test_app(DATABASE_URL=url)
    yield app
    with app.app_context():
        db.engine.dispose()


def _tables(app) -> set[str]:
    with app.app_context():
        return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def _schema_diff(app) -> list:
    with app.app_context(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, db.metadata)


def test_upgrade_from_empty_builds_every_model_table_and_matches_the_models(empty_app):
    with empty_app.app_context():
        upgrade()
    assert _tables(empty_app) == MODEL_TABLES
    assert _schema_diff(empty_app) == []


def test_downgrade_removes_everything_and_upgrade_again_restores_it(empty_app):
    with empty_app.app_context():
        upgrade()
        downgrade(revision="base")
    assert _tables(empty_app) == set()
    with empty_app.app_context():
        upgrade()
    assert _tables(empty_app) == MODEL_TABLES

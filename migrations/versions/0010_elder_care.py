"""device heartbeats, daily check-in, re-alerts (issue 22)

Revision ID: 0010_elder_care
Revises: 0009_work_orders
Create Date: 2026-12-02 19:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0010_elder_care'
down_revision = '0009_work_orders'
branch_labels = None
depends_on = None


def upgrade():
    pass  # filled in by the work


def downgrade():
    pass

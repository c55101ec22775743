"""departments, dispatch and follow-up of work orders (issue 21)

Revision ID: 0009_work_orders
Revises: 0008_wechat_subscriptions
Create Date: 2026-12-02 19:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0009_work_orders'
down_revision = '0008_wechat_subscriptions'
branch_labels = None
depends_on = None


def upgrade():
    pass  # filled in by the work


def downgrade():
    pass

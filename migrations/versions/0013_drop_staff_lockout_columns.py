"""drop staff.failed_logins and staff.locked_until

Revision ID: 0013_drop_staff_lockout
Revises: 0012_outbox_provider
Create Date: 2026-12-03 10:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013_drop_staff_lockout'
down_revision = '0012_outbox_provider'
branch_labels = None
depends_on = None


def upgrade():
    # Unread and unwritten since 0006 moved staff sign-in failures to Redis (app/services/staff/auth.py); they were
    # kept only while a release older than 0006 could still be running beside the new one.
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("failed_logins")
        batch.drop_column("locked_until")


def downgrade():
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))

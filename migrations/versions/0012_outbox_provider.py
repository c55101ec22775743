"""the telephony provider of each outbox SMS (issue 25)

Revision ID: 0012_outbox_provider
Revises: 0011_telephony_providers
Create Date: 2026-12-03 10:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012_outbox_provider'
down_revision = '0011_telephony_providers'
branch_labels = None
depends_on = None


def upgrade():
    # Which provider sent an outbox row by SMS (Twilio or Aliyun, by the number); rows sent before were Twilio's.
    op.add_column("outbound_messages", sa.Column("provider", sa.String(length=16), nullable=True))
    op.execute("UPDATE outbound_messages SET provider = 'twilio' WHERE route = 'sms'")


def downgrade():
    op.drop_column("outbound_messages", "provider")

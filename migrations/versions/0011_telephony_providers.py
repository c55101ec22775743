"""the telephony provider of each call and SMS (issue 25)

Revision ID: 0011_telephony_providers
Revises: 0010_elder_care
Create Date: 2026-12-02 19:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0011_telephony_providers'
down_revision = '0010_elder_care'
branch_labels = None
depends_on = None


def upgrade():
    # Which provider placed each call or sent each SMS of a help alert (Twilio or Aliyun); old rows were Twilio's.
    op.add_column("escalation_steps", sa.Column("provider", sa.String(length=16), nullable=True))
    op.execute("UPDATE escalation_steps SET provider = 'twilio' WHERE channel IN ('voice', 'sms')")


def downgrade():
    op.drop_column("escalation_steps", "provider")

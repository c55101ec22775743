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
    pass  # filled in by the work


def downgrade():
    pass

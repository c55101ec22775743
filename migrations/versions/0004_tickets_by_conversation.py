"""index tickets by conversation (issue 3)

Every inbound message asks, in the webhook's one lookup query, whether a ticket of its conversation could
take it (open, recently resolved, or waiting for a rating). Without this index that question scans all
tickets, which grows with every year of service.

Revision ID: 0004_tickets_by_conversation
Revises: 0003_conversation_days
Create Date: 2026-11-24 18:05:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004_tickets_by_conversation'
down_revision = '0003_conversation_days'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_conversation_id'), ['conversation_id'], unique=False)


def downgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_conversation_id'))

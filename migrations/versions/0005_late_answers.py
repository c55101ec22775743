"""mark messages whose bot answer comes after the webhook's budget (issue 3)

A WeChat turn whose bot answer misses the 4-second budget is answered "success" and its reply goes through
the outbox when the bot is done. If the process dies in between, nothing else would remember the turn: the
mark lets a sweeper hand such a message to staff (conversations.hand_over_lost_late_answers).

Revision ID: 0005_late_answers
Revises: 0004_tickets_by_conversation
Create Date: 2026-11-24 23:00:00

"""
import sqlalchemy as sa
from alembic import op



# revision identifiers, used by Alembic.
revision = '0005_late_answers'
down_revision = '0004_tickets_by_conversation'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_answer_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_messages_late_answer_due', ['late_answer_due_at'], unique=False,
                              postgresql_where=sa.text('late_answer_due_at IS NOT NULL'),
                              sqlite_where=sa.text('late_answer_due_at IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_late_answer_due',
                            postgresql_where=sa.text('late_answer_due_at IS NOT NULL'),
                            sqlite_where=sa.text('late_answer_due_at IS NOT NULL'))
        batch_op.drop_column('late_answer_due_at')

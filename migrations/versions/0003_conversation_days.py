"""conversation-day rollup for the volume and bot reports (issue 10)

The table starts empty and no watermark row exists, so the reports aggregate `messages` live (exact, as
before) until the first refresh backfills every settled day: the hourly `refresh_report_rollups` job, or
`flask rollup-reports` right after deploying. A partial index on resident messages' `created_at` serves
the live tail and the refresh. Downgrading drops derived data and that index only.

Revision ID: 0003_conversation_days
Revises: 0002_mobile_api
Create Date: 2026-11-24 17:32:58.704176

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_conversation_days'
down_revision = '0002_mobile_api'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rollup_watermarks',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('complete_before', sa.Date(), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_watermarks'))
    )
    op.create_table('conversation_days',
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('resident_messages', sa.Integer(), nullable=False),
    sa.Column('classified', sa.Integer(), nullable=False),
    sa.Column('fallback', sa.Integer(), nullable=False),
    sa.CheckConstraint('classified <= resident_messages AND fallback <= classified', name=op.f('ck_conversation_days_counts')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_days_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'day', name=op.f('pk_conversation_days'))
    )
    with op.batch_alter_table('conversation_days', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_days_day', ['day'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_resident_created', ['created_at'], unique=False,
                              postgresql_where=sa.text("author = 'resident'"),
                              sqlite_where=sa.text("author = 'resident'"))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_resident_created')

    with op.batch_alter_table('conversation_days', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_days_day')

    op.drop_table('conversation_days')
    op.drop_table('rollup_watermarks')

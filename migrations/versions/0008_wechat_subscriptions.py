"""WeChat subscribe-message grants and the route each outbox row took (issue 23)

A resident's accepted subscribe-message popup allows the account one message of that template
(`wechat_subscribe_grants.remaining`); each event is applied once (`wechat_subscribe_events`, WeChat retries).
An outbox row may carry a logical template key and its fields, and records how it was sent (`route`).

Revision ID: 0008_wechat_subscriptions
Revises: 0007_slot_holds_and_waitlist
Create Date: 2026-12-02 19:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008_wechat_subscriptions'
down_revision = '0007_slot_holds_and_waitlist'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('wechat_subscribe_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('template_id', sa.String(length=64), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('remaining >= 0', name=op.f('ck_wechat_subscribe_grants_remaining')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_subscribe_grants')),
    sa.UniqueConstraint('openid', 'template_id', name=op.f('uq_wechat_subscribe_grants_openid_template_id'))
    )
    op.create_table('wechat_subscribe_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('create_time', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_subscribe_events')),
    sa.UniqueConstraint('openid', 'event', 'create_time',
                        name=op.f('uq_wechat_subscribe_events_openid_event_create_time'))
    )
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('template_fields', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('route', sa.String(length=10), nullable=True))
        batch_op.create_check_constraint('route', "route IN ('subscribe', 'kefu', 'sms')")


def downgrade():
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_outbound_messages_route'), type_='check')
        batch_op.drop_column('route')
        batch_op.drop_column('template_fields')
        batch_op.drop_column('template')
    op.drop_table('wechat_subscribe_events')
    op.drop_table('wechat_subscribe_grants')

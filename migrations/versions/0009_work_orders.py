"""departments, dispatch and follow-up of work orders (issue 21)

A street's departments (`work_departments`, members and a lead) take tickets dispatched to them (`work_orders`, one
per ticket, its state moved by compare-and-set), held to response and handling limits per category and priority
(`work_order_time_limits`); a resolved work order asks the resident for a follow-up (`work_order_followups`, one open
question per conversation); a duplicate report is linked to its parent ticket (`ticket_duplicates`). The timeline
gains one event kind, 'workorder'.

Revision ID: 0009_work_orders
Revises: 0008_wechat_subscriptions
Create Date: 2026-12-02 19:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009_work_orders'
down_revision = '0008_wechat_subscriptions'
branch_labels = None
depends_on = None

KINDS_BEFORE = ("message_in", "reply_out", "note", "status", "assignment", "sla_breach", "delivery_failed",
                "alert_step", "bot_transcript", "csat")
KINDS_AFTER = KINDS_BEFORE + ("workorder",)


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade():
    op.create_table('work_order_time_limits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=30), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=True),
    sa.Column('response_minutes', sa.Integer(), nullable=False),
    sa.Column('handling_minutes', sa.Integer(), nullable=False),
    sa.CheckConstraint('response_minutes > 0 AND handling_minutes >= response_minutes', name=op.f('ck_work_order_time_limits_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_order_time_limits')),
    sa.UniqueConstraint('category', 'priority', name=op.f('uq_work_order_time_limits_category_priority'))
    )
    op.create_table('work_departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['staff.id'], name=op.f('fk_work_departments_lead_id_staff')),
    sa.ForeignKeyConstraint(['street_id'], ['streets.id'], name=op.f('fk_work_departments_street_id_streets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_departments')),
    sa.UniqueConstraint('street_id', 'name', name=op.f('uq_work_departments_street_id_name'))
    )
    op.create_index(op.f('ix_work_departments_street_id'), 'work_departments', ['street_id'], unique=False)
    op.create_table('work_department_members',
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['work_departments.id'], name=op.f('fk_work_department_members_department_id_work_departments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_work_department_members_staff_id_staff'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('department_id', 'staff_id', name=op.f('pk_work_department_members'))
    )
    op.create_index(op.f('ix_work_department_members_staff_id'), 'work_department_members', ['staff_id'], unique=False)
    op.create_table('ticket_duplicates',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('parent_ticket_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('ticket_id <> parent_ticket_id', name=op.f('ck_ticket_duplicates_not_self')),
    sa.ForeignKeyConstraint(['parent_ticket_id'], ['tickets.id'], name=op.f('fk_ticket_duplicates_parent_ticket_id_tickets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_duplicates_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_ticket_duplicates'))
    )
    op.create_index(op.f('ix_ticket_duplicates_parent_ticket_id'), 'ticket_duplicates', ['parent_ticket_id'], unique=False)
    op.create_table('work_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('response_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('handling_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('response_warned', sa.Boolean(), nullable=False),
    sa.Column('handling_warned', sa.Boolean(), nullable=False),
    sa.Column('response_breached', sa.Boolean(), nullable=False),
    sa.Column('handling_breached', sa.Boolean(), nullable=False),
    sa.Column('lead_texted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lead_text_route', sa.String(length=10), nullable=True),
    sa.Column('supervised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('transfers', sa.Integer(), nullable=False),
    sa.Column('reopened', sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('dispatched', 'returned', 'done')", name=op.f('ck_work_orders_state')),
    sa.ForeignKeyConstraint(['department_id'], ['work_departments.id'], name=op.f('fk_work_orders_department_id_work_departments')),
    sa.ForeignKeyConstraint(['street_id'], ['streets.id'], name=op.f('fk_work_orders_street_id_streets')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_work_orders_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_orders')),
    sa.UniqueConstraint('ticket_id', name=op.f('uq_work_orders_ticket_id'))
    )
    op.create_index('ix_work_orders_department_state', 'work_orders', ['department_id', 'state'], unique=False)
    op.create_table('work_order_followups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_order_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('solved', sa.Boolean(), nullable=True),
    sa.Column('satisfaction', sa.Integer(), nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('asked', 'answered', 'expired')", name=op.f('ck_work_order_followups_status')),
    sa.CheckConstraint('satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5', name=op.f('ck_work_order_followups_satisfaction_range')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_work_order_followups_conversation_id_conversations')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_work_order_followups_resident_id_residents')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_work_order_followups_ticket_id_tickets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['work_order_id'], ['work_orders.id'], name=op.f('fk_work_order_followups_work_order_id_work_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_order_followups'))
    )
    op.create_index(op.f('ix_work_order_followups_resident_id'), 'work_order_followups', ['resident_id'], unique=False)
    op.create_index(op.f('ix_work_order_followups_ticket_id'), 'work_order_followups', ['ticket_id'], unique=False)
    op.create_index(op.f('ix_work_order_followups_work_order_id'), 'work_order_followups', ['work_order_id'], unique=False)
    op.create_index('uq_work_order_followups_asked', 'work_order_followups', ['conversation_id'], unique=True, postgresql_where=sa.text("status = 'asked'"), sqlite_where=sa.text("status = 'asked'"))

    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ticket_events_kind'), type_='check')
        batch_op.create_check_constraint('kind', _kinds(KINDS_AFTER))


def downgrade():
    op.execute("DELETE FROM ticket_events WHERE kind = 'workorder'")
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ticket_events_kind'), type_='check')
        batch_op.create_check_constraint('kind', _kinds(KINDS_BEFORE))
    op.drop_index('uq_work_order_followups_asked', table_name='work_order_followups',
                  postgresql_where=sa.text("status = 'asked'"), sqlite_where=sa.text("status = 'asked'"))
    op.drop_index(op.f('ix_work_order_followups_work_order_id'), table_name='work_order_followups')
    op.drop_index(op.f('ix_work_order_followups_ticket_id'), table_name='work_order_followups')
    op.drop_index(op.f('ix_work_order_followups_resident_id'), table_name='work_order_followups')
    op.drop_table('work_order_followups')
    op.drop_index('ix_work_orders_department_state', table_name='work_orders')
    op.drop_table('work_orders')
    op.drop_index(op.f('ix_ticket_duplicates_parent_ticket_id'), table_name='ticket_duplicates')
    op.drop_table('ticket_duplicates')
    op.drop_index(op.f('ix_work_department_members_staff_id'), table_name='work_department_members')
    op.drop_table('work_department_members')
    op.drop_index(op.f('ix_work_departments_street_id'), table_name='work_departments')
    op.drop_table('work_departments')
    op.drop_table('work_order_time_limits')

"""work orders: time limits per street; one row per department's turn with a work order (its breaches kept)

Revision ID: 0014_workorder_street_limits
Revises: 0013_drop_staff_lockout
Create Date: 2026-12-04 09:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014_workorder_street_limits'
down_revision = '0013_drop_staff_lockout'
branch_labels = None
depends_on = None

OPEN_TURN = "outcome = 'open'"


def upgrade():
    # Limits become a street's own. The rows that exist governed every street's dispatches until now, so each street
    # gets its own copy: no street's deadlines change on the day of the upgrade, and from then on each street's team
    # lead changes only their own. (Giving them to one street would have silently put the others on the defaults.)
    with op.batch_alter_table('work_order_time_limits') as batch:
        batch.add_column(sa.Column('street_id', sa.Integer(), nullable=True))
        batch.drop_constraint('uq_work_order_time_limits_category_priority', type_='unique')  # the copies share it
    op.execute("INSERT INTO work_order_time_limits (street_id, category, priority, response_minutes, "
               "handling_minutes) SELECT s.id, l.category, l.priority, l.response_minutes, l.handling_minutes "
               "FROM work_order_time_limits l CROSS JOIN streets s WHERE l.street_id IS NULL")
    op.execute("DELETE FROM work_order_time_limits WHERE street_id IS NULL")
    with op.batch_alter_table('work_order_time_limits') as batch:
        batch.alter_column('street_id', existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint('uq_work_order_time_limits_street_id_category_priority',
                                       ['street_id', 'category', 'priority'])
        batch.create_foreign_key('fk_work_order_time_limits_street_id_streets', 'streets', ['street_id'], ['id'])

    op.create_table('work_order_dispatches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_order_id', sa.Integer(), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('opened_by', sa.String(length=10), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('response_breached', sa.Boolean(), nullable=False),
    sa.Column('handling_breached', sa.Boolean(), nullable=False),
    sa.CheckConstraint("opened_by IN ('dispatch', 'transfer', 'followup', 'reopen')",
                       name=op.f('ck_work_order_dispatches_opened_by')),
    sa.CheckConstraint("outcome IN ('open', 'transferred', 'returned', 'done')",
                       name=op.f('ck_work_order_dispatches_outcome')),
    sa.ForeignKeyConstraint(['department_id'], ['work_departments.id'],
                            name=op.f('fk_work_order_dispatches_department_id_work_departments')),
    sa.ForeignKeyConstraint(['street_id'], ['streets.id'], name=op.f('fk_work_order_dispatches_street_id_streets')),
    sa.ForeignKeyConstraint(['work_order_id'], ['work_orders.id'], ondelete='CASCADE',
                            name=op.f('fk_work_order_dispatches_work_order_id_work_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_order_dispatches'))
    )
    op.create_index('ix_work_order_dispatches_street_dispatched', 'work_order_dispatches',
                    ['street_id', 'dispatched_at'], unique=False)
    op.create_index('ix_work_order_dispatches_work_order_id', 'work_order_dispatches', ['work_order_id'], unique=False)
    op.create_index('uq_work_order_dispatches_open', 'work_order_dispatches', ['work_order_id'], unique=True,
                    postgresql_where=sa.text(OPEN_TURN), sqlite_where=sa.text(OPEN_TURN))
    with op.batch_alter_table('work_order_followups') as batch:
        batch.add_column(sa.Column('dispatch_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_work_order_followups_dispatch_id_work_order_dispatches',
                                 'work_order_dispatches', ['dispatch_id'], ['id'], ondelete='SET NULL')

    # The history before this revision is gone (a transfer or reopening cleared the breach flags): each work order
    # gets one turn, its current department's, as its row says now; its follow-ups are that turn's.
    op.execute(
        "INSERT INTO work_order_dispatches (work_order_id, street_id, department_id, opened_by, dispatched_at, "
        "responded_at, ended_at, outcome, response_breached, handling_breached) "
        "SELECT id, street_id, department_id, CASE WHEN reopened > 0 THEN 'reopen' WHEN transfers > 0 "
        "THEN 'transfer' ELSE 'dispatch' END, dispatched_at, responded_at, done_at, "
        "CASE state WHEN 'done' THEN 'done' WHEN 'returned' THEN 'returned' ELSE 'open' END, "
        "response_breached, handling_breached FROM work_orders")
    op.execute("UPDATE work_order_followups SET dispatch_id = (SELECT d.id FROM work_order_dispatches d "
               "WHERE d.work_order_id = work_order_followups.work_order_id)")


def downgrade():
    with op.batch_alter_table('work_order_followups') as batch:
        batch.drop_constraint('fk_work_order_followups_dispatch_id_work_order_dispatches', type_='foreignkey')
        batch.drop_column('dispatch_id')
    op.drop_index('uq_work_order_dispatches_open', table_name='work_order_dispatches')
    op.drop_index('ix_work_order_dispatches_work_order_id', table_name='work_order_dispatches')
    op.drop_index('ix_work_order_dispatches_street_dispatched', table_name='work_order_dispatches')
    op.drop_table('work_order_dispatches')
    # One street's limits per (category, priority) survive: the lowest street id's, as the rows cannot all stay.
    op.execute("DELETE FROM work_order_time_limits WHERE EXISTS (SELECT 1 FROM work_order_time_limits o "
               "WHERE o.category = work_order_time_limits.category AND o.street_id < work_order_time_limits.street_id "
               "AND (o.priority = work_order_time_limits.priority OR (o.priority IS NULL AND "
               "work_order_time_limits.priority IS NULL)))")
    with op.batch_alter_table('work_order_time_limits') as batch:
        batch.drop_constraint('fk_work_order_time_limits_street_id_streets', type_='foreignkey')
        batch.drop_constraint('uq_work_order_time_limits_street_id_category_priority', type_='unique')
        batch.create_unique_constraint('uq_work_order_time_limits_category_priority', ['category', 'priority'])
        batch.drop_column('street_id')

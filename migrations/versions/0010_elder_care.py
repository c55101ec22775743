"""device heartbeats, daily check-in, re-alerts (issue 22)

Each help button's last heartbeat and open outage (`device_health`), residents enrolled in the daily check-in
(`checkin_enrolments`) and their check-ins (`checkins`, one per Shanghai day); help alerts may be raised by a missed
check-in (source `checkin`) and call someone before the chain (`lead_resident`, `lead_contact_id`).

Revision ID: 0010_elder_care
Revises: 0009_work_orders
Create Date: 2026-12-02 19:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010_elder_care'
down_revision = '0009_work_orders'
branch_labels = None
depends_on = None

OLD_SOURCES = "source IN ('device', 'wechat_menu', 'bot', 'console', 'api')"
NEW_SOURCES = "source IN ('device', 'wechat_menu', 'bot', 'console', 'api', 'checkin')"


def upgrade():
    op.create_table('device_health',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('last_heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_device_ts', sa.BigInteger(), nullable=True),
    sa.Column('battery', sa.Integer(), nullable=True),
    sa.Column('interval_seconds', sa.Integer(), nullable=False),
    sa.Column('watched_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outage_reason', sa.String(length=10), nullable=True),
    sa.Column('outage_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outage_ticket_id', sa.Integer(), nullable=True),
    sa.Column('outages', sa.Integer(), nullable=False),
    sa.CheckConstraint('battery IS NULL OR battery BETWEEN 0 AND 100', name=op.f('ck_device_health_battery')),
    sa.CheckConstraint('interval_seconds > 0', name=op.f('ck_device_health_interval')),
    sa.CheckConstraint("outage_reason IN ('silent', 'battery')", name=op.f('ck_device_health_outage_reason')),
    sa.ForeignKeyConstraint(['device_id'], ['help_devices.id'], name=op.f('fk_device_health_device_id_help_devices'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outage_ticket_id'], ['tickets.id'],
                            name=op.f('fk_device_health_outage_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_health'))
    )
    with op.batch_alter_table('help_alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_resident', sa.Boolean(), server_default=sa.text('false'),
                                      nullable=False))
        batch_op.add_column(sa.Column('lead_contact_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_help_alerts_lead_contact_id_help_contacts'), 'help_contacts',
                                    ['lead_contact_id'], ['id'])
        batch_op.drop_constraint(batch_op.f('ck_help_alerts_source'), type_='check')
        batch_op.create_check_constraint('source', NEW_SOURCES)
    op.create_table('checkin_enrolments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('due_time', sa.Time(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_missed_on', sa.Date(), nullable=True),
    sa.Column('missed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_alert_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['last_alert_id'], ['help_alerts.id'],
                            name=op.f('fk_checkin_enrolments_last_alert_id_help_alerts')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'],
                            name=op.f('fk_checkin_enrolments_resident_id_residents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_enrolments')),
    sa.UniqueConstraint('resident_id', name=op.f('uq_checkin_enrolments_resident_id'))
    )
    op.create_index('ix_checkin_enrolments_due', 'checkin_enrolments', ['active', 'due_time'], unique=False)
    op.create_table('checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('via', sa.String(length=10), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("via IN ('device', 'wechat', 'call', 'sms', 'console')", name=op.f('ck_checkins_via')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_checkins_resident_id_residents'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    sa.UniqueConstraint('resident_id', 'local_date', name=op.f('uq_checkins_resident_id_local_date'))
    )
    op.create_index(op.f('ix_checkins_resident_id'), 'checkins', ['resident_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_checkins_resident_id'), table_name='checkins')
    op.drop_table('checkins')
    op.drop_index('ix_checkin_enrolments_due', table_name='checkin_enrolments')
    op.drop_table('checkin_enrolments')
    op.execute("DELETE FROM escalation_steps WHERE alert_id IN (SELECT id FROM help_alerts WHERE source = 'checkin')")
    op.execute("DELETE FROM help_presses WHERE alert_id IN (SELECT id FROM help_alerts WHERE source = 'checkin')")
    op.execute("DELETE FROM help_alerts WHERE source = 'checkin'")
    with op.batch_alter_table('help_alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_help_alerts_source'), type_='check')
        batch_op.create_check_constraint('source', OLD_SOURCES)
        batch_op.drop_constraint(batch_op.f('fk_help_alerts_lead_contact_id_help_contacts'), type_='foreignkey')
        batch_op.drop_column('lead_contact_id')
        batch_op.drop_column('lead_resident')
    op.drop_table('device_health')

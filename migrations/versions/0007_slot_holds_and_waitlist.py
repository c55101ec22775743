"""held seats and a waitlist per department and day (issue 23)

A resident who picks a slot holds one seat for a few minutes while confirming (`slot_holds`, kind 'hold'); a full
department's day has a line (`waitlist_entries`), and a freed seat is held for the first in line as an offer
(kind 'offer'). A held seat counts in `slots.held_count`, taken by the same guarded UPDATE as a booking, and the
CHECK `booked_count + held_count <= capacity` keeps the database the last word on both.

Revision ID: 0007_slot_holds_and_waitlist
Revises: 0006_staff_sessions
Create Date: 2026-12-04 10:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007_slot_holds_and_waitlist'
down_revision = '0006_staff_sessions'
branch_labels = None
depends_on = None

HELD = sa.text("status = 'held'")
IN_LINE = sa.text("status IN ('waiting', 'offered')")


def upgrade():
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint(
            'seats_within_capacity', 'held_count >= 0 AND booked_count + held_count <= capacity')

    op.create_table('waitlist_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('waiting', 'offered', 'booked', 'lapsed', 'left')",
                       name=op.f('ck_waitlist_entries_status')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                            name=op.f('fk_waitlist_entries_department_id_departments')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_waitlist_entries_patient_id_patients')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_waitlist_entries_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries'))
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_entries_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index('ix_waitlist_entries_line', ['department_id', 'local_date', 'status', 'id'],
                              unique=False)
        batch_op.create_index('uq_waitlist_entries_in_line', ['patient_id', 'department_id', 'local_date'],
                              unique=True, postgresql_where=IN_LINE, sqlite_where=IN_LINE)

    op.create_table('slot_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('waitlist_entry_id', sa.Integer(), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('hold', 'offer')", name=op.f('ck_slot_holds_kind')),
    sa.CheckConstraint("status IN ('held', 'confirmed', 'released', 'expired')", name=op.f('ck_slot_holds_status')),
    sa.CheckConstraint("(kind = 'offer') = (waitlist_entry_id IS NOT NULL)",
                       name=op.f('ck_slot_holds_offer_has_entry')),
    sa.CheckConstraint('created_at < expires_at', name=op.f('ck_slot_holds_time_order')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'],
                            name=op.f('fk_slot_holds_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                            name=op.f('fk_slot_holds_department_id_departments')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_slot_holds_patient_id_patients')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_slot_holds_resident_id_residents')),
    sa.ForeignKeyConstraint(['slot_id'], ['slots.id'], name=op.f('fk_slot_holds_slot_id_slots')),
    sa.ForeignKeyConstraint(['waitlist_entry_id'], ['waitlist_entries.id'],
                            name=op.f('fk_slot_holds_waitlist_entry_id_waitlist_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slot_holds'))
    )
    with op.batch_alter_table('slot_holds', schema=None) as batch_op:
        batch_op.create_index('ix_slot_holds_slot_status', ['slot_id', 'status'], unique=False)
        batch_op.create_index('ix_slot_holds_resident_status', ['resident_id', 'status'], unique=False)
        batch_op.create_index('ix_slot_holds_held_expiry', ['expires_at'], unique=False,
                              postgresql_where=HELD, sqlite_where=HELD)
        batch_op.create_index('uq_slot_holds_held_offer', ['waitlist_entry_id'], unique=True,
                              postgresql_where=HELD, sqlite_where=HELD)
        batch_op.create_index('uq_slot_holds_held_patient_day', ['patient_id', 'department_id', 'local_date'],
                              unique=True, postgresql_where=HELD, sqlite_where=HELD)


def downgrade():
    with op.batch_alter_table('slot_holds', schema=None) as batch_op:
        batch_op.drop_index('uq_slot_holds_held_patient_day', postgresql_where=HELD, sqlite_where=HELD)
        batch_op.drop_index('uq_slot_holds_held_offer', postgresql_where=HELD, sqlite_where=HELD)
        batch_op.drop_index('ix_slot_holds_held_expiry', postgresql_where=HELD, sqlite_where=HELD)
        batch_op.drop_index('ix_slot_holds_resident_status')
        batch_op.drop_index('ix_slot_holds_slot_status')

    op.drop_table('slot_holds')
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.drop_index('uq_waitlist_entries_in_line', postgresql_where=IN_LINE, sqlite_where=IN_LINE)
        batch_op.drop_index('ix_waitlist_entries_line')
        batch_op.drop_index(batch_op.f('ix_waitlist_entries_resident_id'))

    op.drop_table('waitlist_entries')
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_slots_seats_within_capacity'), type_='check')
        batch_op.drop_column('held_count')

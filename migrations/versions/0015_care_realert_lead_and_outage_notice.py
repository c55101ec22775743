"""elder care: a re-alert of an alert staff accepted calls that staff member first (`help_alerts.lead_staff_id`);
a device outage's family notice is retried until sent (`device_health.outage_notified_at`)

An alert accepted at the console or by an on-duty staff member's key press carries no contact, so its re-alert had
nobody to lead with; the accepting staff member (their phone) now leads the new round, as an accepting contact does
with `lead_contact_id`. An outage's contacts were told once after its commit, and never if the process died there:
the outage now commits with `outage_notified_at` empty and the device sweep tells the contacts of any outage still
untold.

Revision ID: 0015_care_lead_staff_notice
Revises: 0014_workorder_street_limits
Create Date: 2026-12-03 11:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015_care_lead_staff_notice'  # alembic_version holds 32 characters
down_revision = '0014_workorder_street_limits'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('help_alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_staff_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_help_alerts_lead_staff_id_staff'), 'staff',
                                    ['lead_staff_id'], ['id'])
    with op.batch_alter_table('device_health', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outage_notified_at', sa.DateTime(timezone=True), nullable=True))
    # Outages open at the upgrade were told (or not) by the old code; they are not told again.
    op.execute("UPDATE device_health SET outage_notified_at = outage_started_at WHERE outage_started_at IS NOT NULL")


def downgrade():
    with op.batch_alter_table('device_health', schema=None) as batch_op:
        batch_op.drop_column('outage_notified_at')
    with op.batch_alter_table('help_alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_help_alerts_lead_staff_id_staff'), type_='foreignkey')
        batch_op.drop_column('lead_staff_id')

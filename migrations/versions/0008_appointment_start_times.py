"""Every start time an appointment was seen at, so marts can tell a rescheduled booking.

The raw tables keep only each entity's latest state, and GHL's calendar events carry no
"rescheduled" flag. A log of the distinct start times seen, written by the one apply
path for webhooks and pulls alike, answers "was it moved?" the same way whatever order
(or however often) the versions arrive.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE raw.ghl_appointment_start_times (
            location_id text NOT NULL,
            appointment_id text NOT NULL,
            start_time timestamptz NOT NULL,
            first_seen_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (location_id, appointment_id, start_time)
        );
        COMMENT ON TABLE raw.ghl_appointment_start_times IS
            'Distinct start times seen per GHL appointment: more than one means it was moved.';
        -- Pipeline-only, like ops: the app role gets no grant and no policy.
        ALTER TABLE raw.ghl_appointment_start_times ENABLE ROW LEVEL SECURITY;
        ALTER TABLE raw.ghl_appointment_start_times FORCE ROW LEVEL SECURITY;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE raw.ghl_appointment_start_times;")

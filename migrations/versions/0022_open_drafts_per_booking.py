"""One open draft per booking: a client's two bookings are each confirmed.

The open-draft slot was the client and purpose, so a client who booked Monday and Thursday
at once had only Monday confirmed (and two sessions tomorrow, one reminder). A draft about
a booking (its trigger names the appointment) now has a slot per booking; every other
purpose keeps one open draft per client.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

OPEN = "('draft', 'pending_approval', 'needs_manual')"


def upgrade() -> None:
    op.execute(
        f"""
        DROP INDEX app.messages_one_open_draft_idx;
        CREATE UNIQUE INDEX messages_one_open_draft_idx ON app.messages
            (client_id, purpose, (coalesce(trigger->>'appointment_id', '')))
            WHERE status IN {OPEN};
        COMMENT ON COLUMN app.messages.purpose IS
            'What the draft is for; one open draft per client and purpose, and per booking '
            'for a draft about one.';
        """
    )


def downgrade() -> None:
    # Back to one per client and purpose: the newest open draft of each slot stays open.
    op.execute(
        f"""
        UPDATE app.messages m SET status = 'suppressed', suppressed_reason = 'downgrade',
               updated_at = now()
        WHERE m.status IN {OPEN} AND EXISTS (
            SELECT 1 FROM app.messages n
            WHERE n.client_id = m.client_id AND n.purpose = m.purpose AND n.status IN {OPEN}
              AND (n.created_at, n.id) > (m.created_at, m.id));
        DROP INDEX app.messages_one_open_draft_idx;
        CREATE UNIQUE INDEX messages_one_open_draft_idx ON app.messages (client_id, purpose)
            WHERE status IN {OPEN};
        COMMENT ON COLUMN app.messages.purpose IS
            'What the draft is for; one open draft per client and purpose.';
        """
    )

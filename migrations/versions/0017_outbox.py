"""The outbox: approved messages claimed, held, sent once, and the burst brake.

- `queued` is the durable claim of a send run (`claimed_at`, `claimed_by`): the call to
  GHL may be in flight. A claim is resolved by its run (sent, failed, back to approved)
  or, if the run died, by reconciliation with GHL after the lease: found in the
  conversation → sent; not found → approved again. Never re-sent blind.
- `held_until` / `held_reason`: an approved message waiting for the client's sending
  window, a frequency cap or a retry after GHL said "too many requests".
- `app.locations.burst_limit`: more sends than this in 10 minutes pauses the studio's
  sending (the kill switch, set by the system with `sending_paused_reason`) and raises a
  SEV1 event for a person to look at.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE app.messages
            ADD COLUMN claimed_at timestamptz,
            ADD COLUMN claimed_by text,
            ADD COLUMN held_until timestamptz,
            ADD COLUMN held_reason text,
            ADD CONSTRAINT messages_claimed_when_queued
                CHECK ((status = 'queued') = (claimed_at IS NOT NULL AND claimed_by IS NOT NULL));
        CREATE INDEX messages_claims_idx ON app.messages (location_id, held_until)
            WHERE status IN ('approved', 'queued');
        CREATE INDEX messages_sent_recently_idx ON app.messages (client_id, sent_at)
            WHERE sent_at IS NOT NULL;
        ALTER TABLE app.locations
            ADD COLUMN burst_limit integer NOT NULL DEFAULT 200 CHECK (burst_limit > 0),
            ADD COLUMN sending_paused_reason text,
            DROP CONSTRAINT locations_pause_attributed,
            ADD CONSTRAINT locations_pause_attributed CHECK (
                sending_paused_at IS NULL OR sending_paused_by IS NOT NULL
                OR sending_paused_reason IS NOT NULL);
        GRANT UPDATE (sending_paused_reason) ON app.locations TO trainu_app;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        REVOKE UPDATE (sending_paused_reason) ON app.locations FROM trainu_app;
        DROP INDEX app.messages_claims_idx, app.messages_sent_recently_idx;
        UPDATE app.locations SET sending_paused_at = NULL
            WHERE sending_paused_at IS NOT NULL AND sending_paused_by IS NULL;
        ALTER TABLE app.locations DROP CONSTRAINT locations_pause_attributed,
            DROP COLUMN sending_paused_reason, DROP COLUMN burst_limit,
            ADD CONSTRAINT locations_pause_attributed
                CHECK (sending_paused_at IS NULL OR sending_paused_by IS NOT NULL);
        UPDATE app.messages SET status = 'approved' WHERE status = 'queued';
        ALTER TABLE app.messages DROP CONSTRAINT messages_claimed_when_queued,
            DROP COLUMN claimed_at, DROP COLUMN claimed_by,
            DROP COLUMN held_until, DROP COLUMN held_reason;
        """
    )

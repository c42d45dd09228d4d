"""The AI Inbox's decisions on drafts: what the trainer did, and drafts put off for later.

- `decision`: approved_unedited, approved_edited or rejected, set with `decided_at` when a
  human acts, so acceptance rates by trainer and purpose are a GROUP BY. The original
  text stays in `draft_body`, the final one in `body` (= `approved_body` once approved).
- `snoozed_until`: a pending draft hidden from the inbox until then.
- Everyone may read back the `app.events` rows they caused themselves (a trainer's own
  decisions), which `INSERT ... RETURNING` needs; the rest of the log stays the owner's.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE app.messages
            ADD COLUMN decision text
                CHECK (decision IN ('approved_unedited', 'approved_edited', 'rejected')),
            ADD COLUMN decided_at timestamptz,
            ADD COLUMN snoozed_until timestamptz,
            ADD CONSTRAINT messages_decision_dated CHECK ((decision IS NULL) = (decided_at IS NULL));
        COMMENT ON COLUMN app.messages.decision IS
            'What the trainer did with the draft; draft_body is the original, body the final text.';
        GRANT UPDATE (decision, decided_at, snoozed_until) ON app.messages TO trainu_app;
        CREATE POLICY events_select_own ON app.events FOR SELECT TO trainu_app
            USING (actor_user_id = (SELECT app.session_user_id()));
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP POLICY events_select_own ON app.events;
        REVOKE UPDATE (decision, decided_at, snoozed_until) ON app.messages FROM trainu_app;
        ALTER TABLE app.messages DROP COLUMN decision, DROP COLUMN decided_at,
            DROP COLUMN snoozed_until;
        """
    )

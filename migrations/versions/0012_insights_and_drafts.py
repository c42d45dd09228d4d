"""Risk reasons and message drafts: what each draft is for, and whether it passed safety.

- `app.insights.reason`: the plain-language reason a trainer reads ("no session in 12
  days (usually weekly); nothing booked"); `reasons` keeps the factors behind it.
- `app.messages.purpose`: confirmation, reminder, no_show_checkin, reschedule_offer,
  re_engagement, milestone or reply; at most one open draft per client and purpose
  (a unique partial index, so two runs racing cannot both create one).
- `app.locations.draft_voice`: the owner's voice for drafts (tone, sign-off, and template
  bodies per purpose), read by the drafter.
- `needs_manual`: a draft that failed the safety validators twice; `safety` holds the
  verdict (failed rules, SMS segments) shown with every draft.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STATUSES = (
    "'draft', 'pending_approval', 'approved', 'queued', 'sent', 'delivered', 'failed', "
    "'rejected', 'escalated', 'suppressed', 'received'"
)
PURPOSES = (
    "'confirmation', 'reminder', 'no_show_checkin', 'reschedule_offer', 're_engagement', "
    "'milestone', 'reply'"
)


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE app.insights ADD COLUMN reason text NOT NULL DEFAULT '';
        ALTER TABLE app.locations ADD COLUMN draft_voice jsonb NOT NULL DEFAULT '{{}}'
            CHECK (jsonb_typeof(draft_voice) = 'object');
        COMMENT ON COLUMN app.locations.draft_voice IS
            'Owner settings for drafts: {{"tone", "sign_off", "templates": {{purpose: body}}}}.';
        ALTER TABLE app.messages
            ADD COLUMN purpose text CHECK (purpose IN ({PURPOSES})),
            ADD COLUMN safety jsonb NOT NULL DEFAULT '{{}}',
            DROP CONSTRAINT messages_status_check,
            ADD CONSTRAINT messages_status_check
                CHECK (status IN ({STATUSES}, 'needs_manual'));
        CREATE UNIQUE INDEX messages_one_open_draft_idx ON app.messages (client_id, purpose)
            WHERE status IN ('draft', 'pending_approval', 'needs_manual');
        COMMENT ON COLUMN app.messages.purpose IS
            'What the draft is for; one open draft per client and purpose.';
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP INDEX app.messages_one_open_draft_idx;
        UPDATE app.messages SET status = 'draft' WHERE status = 'needs_manual';
        ALTER TABLE app.messages DROP COLUMN purpose, DROP COLUMN safety,
            DROP CONSTRAINT messages_status_check,
            ADD CONSTRAINT messages_status_check CHECK (status IN ({STATUSES}));
        ALTER TABLE app.locations DROP COLUMN draft_voice;
        ALTER TABLE app.insights DROP COLUMN reason;
        """
    )

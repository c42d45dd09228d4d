"""Regenerating a draft in the inbox: the facts it was written from, and the rights to rewrite it.

- `draft_facts`: the trigger's facts the draft was written from (the session's time, the
  goal, the client's question...), so a trainer's "shorter" or "warmer" redrafts the same
  message rather than guessing them again. `draft_body` is the latest text the drafter
  wrote (the original until a regeneration); `body` what the trainer approves.
- The app role may rewrite a draft's text, subject, generator and safety verdict (the
  regeneration) and record the drafter's step in `app.agent_events` for its own clients.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

OWN_STAFF = """location_id = (SELECT app.session_location())
               AND client_id IN (SELECT app.visible_client_ids())
               AND (SELECT app.session_role()) IN ('owner', 'trainer')"""


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE app.messages ADD COLUMN draft_facts jsonb NOT NULL DEFAULT '{{}}'
            CHECK (jsonb_typeof(draft_facts) = 'object');
        COMMENT ON COLUMN app.messages.draft_facts IS
            'The trigger''s facts the draft was written from; a regeneration reuses them.';
        GRANT UPDATE (draft_body, generator, safety) ON app.messages TO trainu_app;
        GRANT INSERT ON app.agent_events TO trainu_app;
        CREATE POLICY agent_events_insert_own ON app.agent_events FOR INSERT TO trainu_app
            WITH CHECK ({OWN_STAFF});
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP POLICY agent_events_insert_own ON app.agent_events;
        REVOKE INSERT ON app.agent_events FROM trainu_app;
        REVOKE UPDATE (draft_body, generator, safety) ON app.messages FROM trainu_app;
        ALTER TABLE app.messages DROP COLUMN draft_facts;
        """
    )

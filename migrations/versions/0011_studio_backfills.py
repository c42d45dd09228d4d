"""A studio's history, pulled once when TrainU first sees it.

One row per studio: the start of the history to pull (`since`, fixed when the studio is
first seen, so a resumed backfill pulls the same range), its state, and the streams
already finished. Each stream's position lives in `raw.pull_state`, so an interrupted
backfill resumes where it stopped. Owners see their studio's row (sync health).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OWNER = "location_id = (SELECT app.session_location()) AND (SELECT app.session_role()) = 'owner'"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE raw.backfills (
            location_id text PRIMARY KEY REFERENCES app.locations,
            since timestamptz NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
            streams_done text[] NOT NULL DEFAULT '{{}}',
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            requested_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz,
            last_error text
        );
        COMMENT ON TABLE raw.backfills IS
            'The history pulled when a studio is first seen; stream cursors in raw.pull_state.';
        ALTER TABLE raw.backfills ENABLE ROW LEVEL SECURITY;
        ALTER TABLE raw.backfills FORCE ROW LEVEL SECURITY;
        GRANT SELECT ON raw.backfills TO trainu_app;
        CREATE POLICY backfills_select ON raw.backfills FOR SELECT TO trainu_app USING ({OWNER});
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE raw.backfills;")

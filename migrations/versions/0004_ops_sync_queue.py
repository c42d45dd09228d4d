"""The sync dead-letter queue: failed ingest work, its retries and its repair.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.sync_queue (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            location_id text,
            source text NOT NULL CHECK (source IN ('webhook', 'pull')),
            webhook_event_id bigint REFERENCES raw.webhook_events (id),
            payload_ref jsonb NOT NULL DEFAULT '{}',
            error_class text NOT NULL,
            error text NOT NULL,
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            max_attempts integer NOT NULL DEFAULT 8 CHECK (max_attempts > 0),
            next_attempt_at timestamptz,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'retrying', 'dead', 'repaired', 'discarded')),
            correlation_id uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            resolved_at timestamptz,
            resolved_by text,
            resolution_note text,
            CHECK (source <> 'webhook' OR webhook_event_id IS NOT NULL),
            CHECK ((status IN ('repaired', 'discarded')) = (resolved_at IS NOT NULL)),
            CHECK (status NOT IN ('pending', 'retrying') OR next_attempt_at IS NOT NULL)
        );
        -- At most one open item per webhook delivery.
        CREATE UNIQUE INDEX sync_queue_open_event_key ON ops.sync_queue (webhook_event_id)
            WHERE status IN ('pending', 'retrying', 'dead');
        CREATE INDEX sync_queue_due_idx ON ops.sync_queue (next_attempt_at)
            WHERE status IN ('pending', 'retrying');
        CREATE INDEX sync_queue_location_status_idx ON ops.sync_queue (location_id, status);
        COMMENT ON TABLE ops.sync_queue IS
            'Dead-letter queue: retried with backoff until max_attempts, then dead for manual repair.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ops.sync_queue;")

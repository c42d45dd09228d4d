"""When the webhook receivers answered 429: GHL's redeliveries of those are believed.

GHL redelivers a 429'd webhook with its original body and signed timestamp, long after
the replay window. Each receiver writes the periods in which it answered 429 here
(`trainu_dagster.ingest.deferrals`), so any replica, or one restarted since, accepts a
redelivery sent in such a period and still refuses other stale deliveries.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.webhook_deferrals (
            receiver text NOT NULL,
            started_at timestamptz NOT NULL,
            ended_at timestamptz NOT NULL CHECK (ended_at >= started_at),
            deliveries bigint NOT NULL CHECK (deliveries > 0),
            PRIMARY KEY (receiver, started_at)
        );
        CREATE INDEX webhook_deferrals_ended_at ON ops.webhook_deferrals (ended_at);
        ALTER TABLE ops.webhook_deferrals ENABLE ROW LEVEL SECURITY;
        ALTER TABLE ops.webhook_deferrals FORCE ROW LEVEL SECURITY;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ops.webhook_deferrals;")

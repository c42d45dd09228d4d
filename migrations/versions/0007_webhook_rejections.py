"""Counts of rejected webhook deliveries by hour, route and reason.

Rejected requests are untrusted, so their bodies are never stored: only how many were
refused and why, which is what an operator needs to spot a misconfigured key or a flood.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.webhook_rejections (
            bucket timestamptz NOT NULL,
            route text NOT NULL,
            reason text NOT NULL,
            count bigint NOT NULL CHECK (count > 0),
            last_seen_at timestamptz NOT NULL,
            PRIMARY KEY (bucket, route, reason)
        );
        ALTER TABLE ops.webhook_rejections ENABLE ROW LEVEL SECURITY;
        ALTER TABLE ops.webhook_rejections FORCE ROW LEVEL SECURITY;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ops.webhook_rejections;")

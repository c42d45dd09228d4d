"""The receivers wake the ingest run after a landing commits, not from inside it.

Migration 0010's trigger `pg_notify`d `trainu_webhook_events` in every landing statement.
A transaction that notifies takes Postgres's one lock on the notification queue when it
commits and keeps it until its commit is flushed to disk, so the receiver's landing
writers committed one after another instead of sharing a WAL flush: at 1,000 deliveries
a second the writers waited mostly on that lock, and the webhook receiver's p99 grew
several-fold. The receiver now sends the notification itself once a batch is durable
(`trainu_dagster.ingest.landing`), in a transaction of its own that waits for no disk.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DROP TRIGGER webhook_events_notify ON raw.webhook_events;
        DROP FUNCTION raw.notify_webhook_events();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION raw.notify_webhook_events() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('trainu_webhook_events', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER webhook_events_notify AFTER INSERT ON raw.webhook_events
            FOR EACH STATEMENT EXECUTE FUNCTION raw.notify_webhook_events();
        """
    )

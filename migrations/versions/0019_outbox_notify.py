"""Wake the send run the moment a message is approved.

A send run stays up while approvals may come (`messaging.send_loop`) and waits on
`LISTEN trainu_outbox` between passes: every change that makes a message approved (a
trainer's approval, a retry falling back to approved, a reconciled claim) and every
resumed studio notifies, so a waiting run sends within moments of the commit instead of
at its next poll.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION app.notify_outbox() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('trainu_outbox', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER messages_approved_notify AFTER INSERT ON app.messages
            FOR EACH ROW WHEN (NEW.status = 'approved')
            EXECUTE FUNCTION app.notify_outbox();
        CREATE TRIGGER messages_approval_notify AFTER UPDATE OF status ON app.messages
            FOR EACH ROW WHEN (NEW.status = 'approved' AND OLD.status <> 'approved')
            EXECUTE FUNCTION app.notify_outbox();
        CREATE TRIGGER locations_resumed_notify AFTER UPDATE OF sending_paused_at
            ON app.locations
            FOR EACH ROW WHEN (OLD.sending_paused_at IS NOT NULL AND NEW.sending_paused_at IS NULL)
            EXECUTE FUNCTION app.notify_outbox();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER locations_resumed_notify ON app.locations;
        DROP TRIGGER messages_approval_notify ON app.messages;
        DROP TRIGGER messages_approved_notify ON app.messages;
        DROP FUNCTION app.notify_outbox();
        """
    )

"""Field-wise last-write-wins, undated deliveries, and webhook events of unknown types.

GHL's partial events (a DND change, a tag change) and workflow bodies carry only some of a
record's fields, so the newest state is decided per field: `field_times` holds, for each
typed column, the source time of the value stored (JSON null: set by an undated delivery,
which later dated ones replace). A row first created by an undated delivery has no
`source_updated_at` yet. A delivery whose event type TrainU cannot parse yet is kept as
`unknown` (counted, reprocessable), never failed into the dead-letter queue. Every landing
statement notifies `trainu_webhook_events`, so a draining ingest run applies a delivery
within moments of its commit instead of on the next poll.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Each raw table's typed columns as of this revision: rows already stored were full
# snapshots, so every one of their fields dates from the row's source time.
TYPED = {
    "ghl_contacts": ["first_name", "last_name", "email", "phone", "timezone",
                     "assigned_user_id", "dnd", "tags", "date_added"],
    "ghl_appointments": ["calendar_id", "contact_id", "assigned_user_id", "status", "title",
                         "start_time", "end_time", "date_added"],
    "ghl_messages": ["conversation_id", "contact_id", "direction", "message_type", "status",
                     "date_added"],
    "ghl_opportunities": ["contact_id", "pipeline_id", "pipeline_stage_id", "status",
                          "monetary_value", "assigned_to"],
    "ghl_notes": ["contact_id", "date_added"],
    "ghl_tasks": ["contact_id", "assigned_to", "title", "due_date", "completed"],
}  # fmt: skip


def upgrade() -> None:
    for table, columns in TYPED.items():
        times = ", ".join(f"'{c}', to_jsonb(source_updated_at)" for c in columns)
        op.execute(
            f"""
            ALTER TABLE raw.{table}
                ADD COLUMN field_times jsonb NOT NULL DEFAULT '{{}}',
                ALTER COLUMN source_updated_at DROP NOT NULL;
            UPDATE raw.{table} SET field_times = jsonb_build_object({times});
            COMMENT ON COLUMN raw.{table}.field_times IS
                'Per typed column: the source time of the value stored (null: undated).';
            """
        )
    op.execute(
        """
        ALTER TABLE raw.webhook_events DROP CONSTRAINT webhook_events_status_check,
            ADD CONSTRAINT webhook_events_status_check
            CHECK (status IN ('pending', 'processed', 'flagged', 'failed', 'unknown'));
        CREATE INDEX webhook_events_unknown_idx ON raw.webhook_events (event_type)
            WHERE status = 'unknown';

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


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER webhook_events_notify ON raw.webhook_events;
        DROP FUNCTION raw.notify_webhook_events();
        DROP INDEX raw.webhook_events_unknown_idx;
        UPDATE raw.webhook_events SET status = 'pending' WHERE status = 'unknown';
        ALTER TABLE raw.webhook_events DROP CONSTRAINT webhook_events_status_check,
            ADD CONSTRAINT webhook_events_status_check
            CHECK (status IN ('pending', 'processed', 'flagged', 'failed'));
        """
    )
    for table in TYPED:
        op.execute(
            f"""
            UPDATE raw.{table} SET source_updated_at = '-infinity' WHERE source_updated_at IS NULL;
            ALTER TABLE raw.{table} DROP COLUMN field_times,
                ALTER COLUMN source_updated_at SET NOT NULL;
            """
        )

"""Raw landing tables: webhook deliveries, latest GHL entity state, pull cursors.

Every entity table keeps the newest state by the source's own timestamp
(`source_updated_at`) so ingest can apply last-write-wins, and a `deleted_at`
tombstone instead of deleting the row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Columns every raw.ghl_* table shares: provenance and last-write-wins bookkeeping.
LANDING_COLUMNS = """
    source_updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    payload jsonb NOT NULL,
    source text NOT NULL CHECK (source IN ('webhook', 'pull')),
    webhook_event_id bigint REFERENCES raw.webhook_events (id),
    correlation_id uuid,
    landed_at timestamptz NOT NULL DEFAULT now()
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE raw.webhook_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            idempotency_key text NOT NULL,
            location_id text,
            route text NOT NULL CHECK (route IN ('marketplace', 'workflow')),
            event_type text,
            entity_id text,
            signature_scheme text NOT NULL
                CHECK (signature_scheme IN ('ed25519', 'rsa-sha256', 'hmac-sha256')),
            source_timestamp timestamptz,
            received_at timestamptz NOT NULL DEFAULT now(),
            body bytea NOT NULL,
            payload jsonb NOT NULL,
            headers jsonb NOT NULL DEFAULT '{{}}',
            correlation_id uuid NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'processed', 'flagged', 'failed')),
            processed_at timestamptz,
            error text,
            CONSTRAINT webhook_events_idempotency_key_key UNIQUE (idempotency_key)
        );
        CREATE INDEX webhook_events_pending_idx ON raw.webhook_events (id) WHERE status = 'pending';
        CREATE INDEX webhook_events_location_received_idx
            ON raw.webhook_events (location_id, received_at);
        COMMENT ON TABLE raw.webhook_events IS
            'Every verified GHL webhook delivery, committed before it is acknowledged.';

        CREATE TABLE raw.ghl_contacts (
            location_id text NOT NULL,
            contact_id text NOT NULL,
            first_name text,
            last_name text,
            email text,
            phone text,
            timezone text,
            assigned_user_id text,
            dnd boolean NOT NULL DEFAULT false,
            tags text[] NOT NULL DEFAULT '{{}}',
            date_added timestamptz,
            {LANDING_COLUMNS},
            PRIMARY KEY (location_id, contact_id)
        );
        CREATE INDEX ghl_contacts_assigned_idx ON raw.ghl_contacts (location_id, assigned_user_id);

        CREATE TABLE raw.ghl_appointments (
            location_id text NOT NULL,
            appointment_id text NOT NULL,
            calendar_id text,
            contact_id text,
            assigned_user_id text,
            status text CHECK (status = lower(status)),
            title text,
            start_time timestamptz,
            end_time timestamptz,
            date_added timestamptz,
            {LANDING_COLUMNS},
            PRIMARY KEY (location_id, appointment_id),
            CHECK (end_time IS NULL OR start_time IS NULL OR end_time >= start_time)
        );
        CREATE INDEX ghl_appointments_contact_idx ON raw.ghl_appointments (location_id, contact_id);
        CREATE INDEX ghl_appointments_start_idx ON raw.ghl_appointments (location_id, start_time);

        CREATE TABLE raw.ghl_messages (
            location_id text NOT NULL,
            message_id text NOT NULL,
            conversation_id text,
            contact_id text,
            direction text CHECK (direction IN ('inbound', 'outbound')),
            message_type text,
            status text,
            date_added timestamptz,
            {LANDING_COLUMNS},
            PRIMARY KEY (location_id, message_id)
        );
        CREATE INDEX ghl_messages_contact_idx ON raw.ghl_messages (location_id, contact_id, date_added);

        CREATE TABLE raw.ghl_opportunities (
            location_id text NOT NULL,
            opportunity_id text NOT NULL,
            contact_id text,
            pipeline_id text,
            pipeline_stage_id text,
            status text,
            monetary_value numeric(14, 2),
            assigned_to text,
            {LANDING_COLUMNS},
            PRIMARY KEY (location_id, opportunity_id)
        );
        CREATE INDEX ghl_opportunities_contact_idx ON raw.ghl_opportunities (location_id, contact_id);

        CREATE TABLE raw.pull_state (
            location_id text NOT NULL,
            stream text NOT NULL
                CHECK (stream IN ('contacts', 'appointments', 'messages', 'opportunities')),
            cursor jsonb NOT NULL DEFAULT '{{}}',
            watermark timestamptz,
            records_pulled bigint NOT NULL DEFAULT 0 CHECK (records_pulled >= 0),
            last_started_at timestamptz,
            last_finished_at timestamptz,
            last_status text CHECK (last_status IN ('running', 'succeeded', 'failed')),
            last_error text,
            PRIMARY KEY (location_id, stream)
        );
        COMMENT ON TABLE raw.pull_state IS 'Durable cursor per (location, stream) for incremental pulls.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE raw.pull_state, raw.ghl_opportunities, raw.ghl_messages,
                   raw.ghl_appointments, raw.ghl_contacts, raw.webhook_events;
        """
    )

"""Product tables: studios, people, goals, messages, insights and the event logs.

Child tables carry `location_id` in a composite foreign key to their parent, so a
row can never point at another studio's client, trainer or goal.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE app.locations (
            location_id text PRIMARY KEY,
            name text NOT NULL,
            timezone text NOT NULL DEFAULT 'UTC',
            created_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE app.locations IS 'A studio: one GHL sub-account, the tenant key everywhere.';

        CREATE TABLE app.users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL REFERENCES app.locations,
            email text NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1),
            role text NOT NULL CHECK (role IN ('owner', 'trainer', 'client')),
            display_name text NOT NULL,
            password_hash text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            disabled_at timestamptz,
            CONSTRAINT users_email_key UNIQUE (email)
        );

        CREATE TABLE app.sessions (
            token_hash bytea PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES app.users ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz
        );
        CREATE INDEX sessions_user_idx ON app.sessions (user_id);
        COMMENT ON TABLE app.sessions IS
            'Signed-in sessions. Only the SHA-256 of each token is stored; RLS resolves the '
            'current user from the token the app sets per transaction.';

        CREATE TABLE app.trainers (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL REFERENCES app.locations,
            user_id uuid UNIQUE REFERENCES app.users,
            ghl_user_id text,
            name text NOT NULL,
            email text,
            timezone text,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (location_id, ghl_user_id),
            UNIQUE (id, location_id)
        );

        CREATE TABLE app.clients (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL REFERENCES app.locations,
            ghl_contact_id text NOT NULL,
            trainer_id uuid,
            user_id uuid UNIQUE REFERENCES app.users,
            name text NOT NULL,
            email text,
            phone text,
            timezone text,
            opted_out_at timestamptz,
            opt_out_reason text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (location_id, ghl_contact_id),
            UNIQUE (id, location_id),
            FOREIGN KEY (trainer_id, location_id) REFERENCES app.trainers (id, location_id)
        );
        CREATE INDEX clients_trainer_idx ON app.clients (trainer_id);

        CREATE TABLE app.goals (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL,
            client_id uuid NOT NULL,
            goal_type text NOT NULL
                CHECK (goal_type IN ('body_weight', 'body_fat', 'strength', 'sessions_per_month', 'custom')),
            title text NOT NULL,
            unit text NOT NULL,
            direction text NOT NULL CHECK (direction IN ('increase', 'decrease')),
            baseline_value numeric NOT NULL,
            target_value numeric NOT NULL,
            start_date date NOT NULL,
            target_date date NOT NULL,
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'achieved', 'abandoned')),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CHECK (target_date > start_date),
            CHECK ((direction = 'increase') = (target_value > baseline_value)),
            UNIQUE (id, location_id),
            UNIQUE (id, client_id),
            FOREIGN KEY (client_id, location_id) REFERENCES app.clients (id, location_id)
        );
        CREATE INDEX goals_client_idx ON app.goals (client_id);

        CREATE TABLE app.goal_entries (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL,
            goal_id uuid NOT NULL,
            client_id uuid NOT NULL,
            value numeric NOT NULL,
            recorded_at timestamptz NOT NULL,
            note text,
            entered_by uuid REFERENCES app.users,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (goal_id, recorded_at),
            FOREIGN KEY (goal_id, location_id) REFERENCES app.goals (id, location_id),
            FOREIGN KEY (goal_id, client_id) REFERENCES app.goals (id, client_id)
        );
        CREATE INDEX goal_entries_client_idx ON app.goal_entries (client_id, recorded_at);

        CREATE TABLE app.insights (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL,
            client_id uuid NOT NULL,
            scored_at timestamptz NOT NULL,
            risk_score numeric(5, 4) NOT NULL CHECK (risk_score BETWEEN 0 AND 1),
            risk_band text NOT NULL CHECK (risk_band IN ('low', 'medium', 'high')),
            reasons jsonb NOT NULL CHECK (jsonb_typeof(reasons) = 'array'),
            features jsonb NOT NULL DEFAULT '{}',
            model_version text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (client_id, scored_at, model_version),
            FOREIGN KEY (client_id, location_id) REFERENCES app.clients (id, location_id)
        );
        CREATE INDEX insights_location_scored_idx ON app.insights (location_id, scored_at DESC);

        CREATE TABLE app.messages (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL,
            client_id uuid NOT NULL,
            trainer_id uuid,
            thread_id uuid NOT NULL DEFAULT gen_random_uuid(),
            direction text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
            channel text NOT NULL CHECK (channel IN ('SMS', 'Email')),
            status text NOT NULL CHECK (status IN (
                'draft', 'pending_approval', 'approved', 'queued', 'sent', 'delivered', 'failed',
                'rejected', 'escalated', 'suppressed', 'received')),
            subject text,
            body text NOT NULL,
            draft_body text,
            generator text CHECK (generator IN ('openai', 'template', 'human')),
            approved_body text,
            approved_by uuid REFERENCES app.users,
            approved_at timestamptz,
            rejected_reason text,
            suppressed_reason text,
            escalation_reason text,
            insight_id uuid REFERENCES app.insights,
            trigger jsonb NOT NULL DEFAULT '{}',
            idempotency_key text NOT NULL DEFAULT gen_random_uuid()::text,
            ghl_conversation_id text,
            ghl_message_id text,
            send_attempts integer NOT NULL DEFAULT 0 CHECK (send_attempts >= 0),
            scheduled_for timestamptz,
            sent_at timestamptz,
            delivered_at timestamptz,
            failed_reason text,
            correlation_id uuid NOT NULL DEFAULT gen_random_uuid(),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT messages_idempotency_key_key UNIQUE (idempotency_key),
            UNIQUE (location_id, ghl_message_id),
            FOREIGN KEY (client_id, location_id) REFERENCES app.clients (id, location_id),
            FOREIGN KEY (trainer_id, location_id) REFERENCES app.trainers (id, location_id),
            CHECK ((direction = 'inbound') = (status = 'received')),
            CHECK (status <> 'rejected' OR rejected_reason IS NOT NULL),
            -- Nothing goes out without a human approval recorded against that exact text.
            CONSTRAINT messages_send_requires_approval CHECK (
                status NOT IN ('approved', 'queued', 'sent', 'delivered', 'failed')
                OR (approved_by IS NOT NULL AND approved_at IS NOT NULL
                    AND approved_body IS NOT DISTINCT FROM body))
        );
        CREATE INDEX messages_location_status_idx ON app.messages (location_id, status);
        CREATE INDEX messages_client_created_idx ON app.messages (client_id, created_at);
        CREATE INDEX messages_outbox_idx ON app.messages (scheduled_for)
            WHERE status IN ('approved', 'queued');

        CREATE TABLE app.agent_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            location_id text NOT NULL,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            agent text NOT NULL,
            event_type text NOT NULL,
            client_id uuid,
            message_id uuid REFERENCES app.messages,
            insight_id uuid REFERENCES app.insights,
            payload jsonb NOT NULL DEFAULT '{}',
            correlation_id uuid,
            FOREIGN KEY (client_id, location_id) REFERENCES app.clients (id, location_id)
        );
        CREATE INDEX agent_events_location_idx ON app.agent_events (location_id, occurred_at);

        CREATE TABLE app.events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            location_id text,
            event_type text NOT NULL,
            actor text NOT NULL,
            actor_user_id uuid,
            entity_type text,
            entity_id text,
            correlation_id uuid,
            properties jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_location_occurred_idx ON app.events (location_id, occurred_at);
        CREATE INDEX events_type_occurred_idx ON app.events (event_type, occurred_at);
        CREATE INDEX events_entity_idx ON app.events (entity_type, entity_id);
        COMMENT ON TABLE app.events IS 'Immutable product event log: UPDATE, DELETE and TRUNCATE are refused.';

        CREATE TABLE app.audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            location_id text NOT NULL REFERENCES app.locations,
            user_id uuid NOT NULL REFERENCES app.users,
            action text NOT NULL,
            entity_type text,
            entity_id text,
            details jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_location_idx ON app.audit_log (location_id, occurred_at);
        COMMENT ON TABLE app.audit_log IS 'Who did what in the UI; append-only like app.events.';

        -- Append-only, enforced for every role including the owner: statement-level
        -- triggers fire even when RLS or a WHERE clause leaves no rows to touch.
        CREATE FUNCTION app.refuse_mutation() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '%.% is append-only: % is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$;
        CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON app.events
            FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_mutation();
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON app.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_mutation();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE app.audit_log, app.events, app.agent_events, app.messages, app.insights,
                   app.goal_entries, app.goals, app.clients, app.trainers, app.sessions,
                   app.users, app.locations;
        DROP FUNCTION app.refuse_mutation();
        """
    )

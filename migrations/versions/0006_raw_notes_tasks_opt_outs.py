"""Raw notes and tasks, and the opt-outs GHL tells us about.

Notes and tasks are GHL entities like contacts, so they land the same way: latest state
by the source's timestamp, a tombstone instead of a delete. Opt-outs are different: they
are facts that must survive whatever later happens to the contact row (an update that
clears `dnd`, a pull with a partial payload), so they are kept as their own append-only
rows, one per (contact, reason, channel, moment): replaying an event never adds a second.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Columns every raw.ghl_* table shares (as in 0002): provenance and last-write-wins bookkeeping.
LANDING_COLUMNS = """
    source_updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    payload jsonb NOT NULL,
    source text NOT NULL CHECK (source IN ('webhook', 'pull')),
    webhook_event_id bigint REFERENCES raw.webhook_events (id),
    correlation_id uuid,
    landed_at timestamptz NOT NULL DEFAULT now()
"""

# The predicate 0005 gives raw.ghl_opportunities: the location's owner sees everything, staff
# see the rows of the contacts they may see (clients never see notes, tasks or opt-outs).
SAME_LOCATION = "location_id = (SELECT app.session_location())"
OWNER = f"({SAME_LOCATION} AND (SELECT app.session_role()) = 'owner')"
STAFF = "(SELECT app.session_role()) IN ('owner', 'trainer')"
OWN_CONTACTS = f"({SAME_LOCATION} AND contact_id IN (SELECT app.visible_contact_ids()))"
VISIBLE = f"{OWNER} OR ({OWN_CONTACTS} AND {STAFF})"

NEW_TABLES = ("raw.ghl_notes", "raw.ghl_tasks", "raw.ghl_opt_outs")


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE raw.ghl_notes (
            location_id text NOT NULL,
            note_id text NOT NULL,
            contact_id text,
            date_added timestamptz,
            {LANDING_COLUMNS},
            PRIMARY KEY (location_id, note_id)
        );
        CREATE INDEX ghl_notes_contact_idx ON raw.ghl_notes (location_id, contact_id);

        CREATE TABLE raw.ghl_tasks (
            location_id text NOT NULL,
            task_id text NOT NULL,
            contact_id text,
            assigned_to text,
            title text,
            due_date timestamptz,
            completed boolean NOT NULL DEFAULT false,
            {LANDING_COLUMNS},
            PRIMARY KEY (location_id, task_id)
        );
        CREATE INDEX ghl_tasks_contact_idx ON raw.ghl_tasks (location_id, contact_id);

        CREATE TABLE raw.ghl_opt_outs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            location_id text NOT NULL,
            contact_id text NOT NULL,
            reason text NOT NULL CHECK (reason IN ('dnd', 'stop_reply')),
            channel text,
            occurred_at timestamptz NOT NULL,
            webhook_event_id bigint REFERENCES raw.webhook_events (id),
            correlation_id uuid,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ghl_opt_outs_once UNIQUE NULLS NOT DISTINCT
                (location_id, contact_id, reason, channel, occurred_at)
        );
        CREATE INDEX ghl_opt_outs_contact_idx ON raw.ghl_opt_outs (location_id, contact_id);
        COMMENT ON TABLE raw.ghl_opt_outs IS
            'Opt-outs seen in GHL events (DND set, STOP replies); channel NULL means all channels.';
        -- A record of consent withdrawn is evidence: nobody rewrites or removes it.
        CREATE TRIGGER ghl_opt_outs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
            ON raw.ghl_opt_outs FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_mutation();
        """
    )
    for table in NEW_TABLES:
        name = table.split(".")[1]
        op.execute(
            f"""
            ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
            ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
            GRANT SELECT ON {table} TO trainu_app;
            CREATE POLICY {name}_select ON {table} FOR SELECT TO trainu_app USING ({VISIBLE});
            """
        )


def downgrade() -> None:
    op.execute("DROP TABLE raw.ghl_opt_outs, raw.ghl_tasks, raw.ghl_notes;")

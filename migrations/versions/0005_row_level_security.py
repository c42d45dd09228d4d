"""Row Level Security: who sees what, decided by the database.

The app sets `trainu.session_token` per transaction. The policies resolve it through
SECURITY DEFINER functions against `app.sessions`, which the app role cannot read or
write, so forging `set_config` values or `SET ROLE` from an app connection widens
nothing: without a token issued at sign-in, a session sees no rows.

Scopes: an owner sees their whole location; a trainer sees their own clients and those
clients' bookings, messages, goals and insights; a client sees only their own rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"

SESSION_FUNCTIONS = f"""
CREATE FUNCTION app.issue_session(p_user_id uuid, p_lifetime interval) RETURNS text
LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
DECLARE
    v_token text := encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
BEGIN
    IF NOT EXISTS (SELECT FROM app.users WHERE id = p_user_id AND disabled_at IS NULL) THEN
        RAISE EXCEPTION 'no active user %', p_user_id
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    INSERT INTO app.sessions (token_hash, user_id, expires_at)
    VALUES (sha256(convert_to(v_token, 'UTF8')), p_user_id, now() + p_lifetime);
    RETURN v_token;
END
$$;

CREATE FUNCTION app.end_session() RETURNS void
LANGUAGE sql VOLATILE {DEFINER} AS $$
    UPDATE app.sessions SET revoked_at = now()
    WHERE token_hash = sha256(convert_to(current_setting('trainu.session_token', true), 'UTF8'))
      AND revoked_at IS NULL
$$;

CREATE FUNCTION app.session_user_id() RETURNS uuid
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT s.user_id
    FROM app.sessions s JOIN app.users u ON u.id = s.user_id
    WHERE s.token_hash = sha256(convert_to(current_setting('trainu.session_token', true), 'UTF8'))
      AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL
$$;

CREATE FUNCTION app.session_role() RETURNS text
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT role FROM app.users WHERE id = app.session_user_id()
$$;

CREATE FUNCTION app.session_location() RETURNS text
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT location_id FROM app.users WHERE id = app.session_user_id()
$$;

CREATE FUNCTION app.visible_client_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT c.id
    FROM app.users me
    JOIN app.clients c ON c.location_id = me.location_id
    LEFT JOIN app.trainers t ON t.id = c.trainer_id
    WHERE me.id = app.session_user_id()
      AND (me.role = 'owner'
           OR (me.role = 'trainer' AND t.user_id = me.id)
           OR (me.role = 'client' AND c.user_id = me.id))
$$;

CREATE FUNCTION app.visible_contact_ids() RETURNS SETOF text
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT ghl_contact_id FROM app.clients WHERE id IN (SELECT app.visible_client_ids())
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.issue_session(uuid, interval) TO trainu_auth;
GRANT EXECUTE ON FUNCTION app.end_session(), app.session_user_id(), app.session_role(),
    app.session_location(), app.visible_client_ids(), app.visible_contact_ids() TO trainu_app;
"""

# Policy predicates, each evaluated once per statement (the sub-SELECTs become init plans).
SAME_LOCATION = "location_id = (SELECT app.session_location())"
OWNER = f"({SAME_LOCATION} AND (SELECT app.session_role()) = 'owner')"
STAFF = "(SELECT app.session_role()) IN ('owner', 'trainer')"
OWN_CLIENTS = f"({SAME_LOCATION} AND client_id IN (SELECT app.visible_client_ids()))"
OWN_CONTACTS = f"({SAME_LOCATION} AND contact_id IN (SELECT app.visible_contact_ids()))"
ME = "(SELECT app.session_user_id())"

# (table, command, USING, WITH CHECK) for the app role; no policy means no rows.
POLICIES: list[tuple[str, str, str | None, str | None]] = [
    ("app.locations", "SELECT", SAME_LOCATION, None),
    ("app.users", "SELECT", f"id = {ME} OR {OWNER}", None),
    ("app.trainers", "SELECT", f"{OWNER} OR user_id = {ME}", None),
    ("app.clients", "SELECT", f"{SAME_LOCATION} AND id IN (SELECT app.visible_client_ids())", None),
    (
        "app.clients",
        "UPDATE",
        f"{SAME_LOCATION} AND id IN (SELECT app.visible_client_ids()) AND {STAFF}",
        f"{SAME_LOCATION} AND id IN (SELECT app.visible_client_ids()) AND {STAFF}",
    ),
    ("app.goals", "SELECT", OWN_CLIENTS, None),
    ("app.goals", "INSERT", None, f"{OWN_CLIENTS} AND {STAFF}"),
    ("app.goals", "UPDATE", f"{OWN_CLIENTS} AND {STAFF}", f"{OWN_CLIENTS} AND {STAFF}"),
    ("app.goal_entries", "SELECT", OWN_CLIENTS, None),
    ("app.goal_entries", "INSERT", None, f"{OWN_CLIENTS} AND entered_by = {ME}"),
    ("app.insights", "SELECT", f"{OWN_CLIENTS} AND {STAFF}", None),
    (
        "app.messages",
        "SELECT",
        f"{OWN_CLIENTS} AND ({STAFF} OR status IN ('sent', 'delivered', 'received'))",
        None,
    ),
    ("app.messages", "INSERT", None, f"{OWN_CLIENTS} AND {STAFF}"),
    ("app.messages", "UPDATE", f"{OWN_CLIENTS} AND {STAFF}", f"{OWN_CLIENTS} AND {STAFF}"),
    ("app.agent_events", "SELECT", f"{OWNER} OR ({OWN_CLIENTS} AND {STAFF})", None),
    ("app.events", "SELECT", OWNER, None),
    ("app.events", "INSERT", None, f"{SAME_LOCATION} AND actor_user_id = {ME}"),
    ("app.audit_log", "SELECT", OWNER, None),
    ("app.audit_log", "INSERT", None, f"{SAME_LOCATION} AND user_id = {ME}"),
    ("raw.ghl_contacts", "SELECT", f"{OWNER} OR {OWN_CONTACTS}", None),
    ("raw.ghl_appointments", "SELECT", f"{OWNER} OR {OWN_CONTACTS}", None),
    ("raw.ghl_messages", "SELECT", f"{OWNER} OR {OWN_CONTACTS}", None),
    ("raw.ghl_opportunities", "SELECT", f"{OWNER} OR ({OWN_CONTACTS} AND {STAFF})", None),
    ("raw.webhook_events", "SELECT", OWNER, None),
    ("raw.pull_state", "SELECT", OWNER, None),
    ("ops.sync_queue", "SELECT", OWNER, None),
    ("ops.sync_queue", "UPDATE", OWNER, OWNER),
]

GRANTS = """
GRANT USAGE ON SCHEMA app, raw, ops TO trainu_app;
GRANT USAGE ON SCHEMA app TO trainu_auth;
GRANT SELECT ON app.locations, app.trainers, app.insights, app.agent_events TO trainu_app;
GRANT SELECT (id, location_id, email, role, display_name, created_at, disabled_at)
    ON app.users TO trainu_app;
GRANT SELECT ON app.clients TO trainu_app;
GRANT UPDATE (opted_out_at, opt_out_reason, updated_at) ON app.clients TO trainu_app;
GRANT SELECT, INSERT ON app.goals, app.goal_entries, app.events, app.audit_log TO trainu_app;
GRANT UPDATE (title, target_value, target_date, status, updated_at) ON app.goals TO trainu_app;
GRANT SELECT, INSERT ON app.messages TO trainu_app;
GRANT UPDATE (status, subject, body, approved_body, approved_by, approved_at, rejected_reason,
              suppressed_reason, escalation_reason, scheduled_for, updated_at)
    ON app.messages TO trainu_app;
GRANT SELECT ON raw.ghl_contacts, raw.ghl_appointments, raw.ghl_messages, raw.ghl_opportunities,
    raw.webhook_events, raw.pull_state TO trainu_app;
GRANT SELECT ON ops.sync_queue TO trainu_app;
GRANT UPDATE (status, next_attempt_at, updated_at, resolved_at, resolved_by, resolution_note)
    ON ops.sync_queue TO trainu_app;
GRANT SELECT (id, email, password_hash, disabled_at) ON app.users TO trainu_auth;
"""

FORCE_RLS_EVERYWHERE = """
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT schemaname, tablename FROM pg_tables
             WHERE schemaname IN ('raw', 'app', 'ops')
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', t.schemaname, t.tablename);
        EXECUTE format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY', t.schemaname, t.tablename);
    END LOOP;
END
$$;
"""


def _policy_sql(index: int, table: str, command: str, using: str | None, check: str | None) -> str:
    name = f"{table.split('.')[1]}_{command.lower()}_{index}"
    clauses = [f"CREATE POLICY {name} ON {table} FOR {command} TO trainu_app"]
    if using:
        clauses.append(f"USING ({using})")
    if check:
        clauses.append(f"WITH CHECK ({check})")
    return " ".join(clauses) + ";"


def upgrade() -> None:
    op.execute(SESSION_FUNCTIONS)
    op.execute(GRANTS)
    op.execute(FORCE_RLS_EVERYWHERE)
    op.execute("\n".join(_policy_sql(i, *policy) for i, policy in enumerate(POLICIES)))
    op.execute("CREATE POLICY users_sign_in ON app.users FOR SELECT TO trainu_auth USING (true);")


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE p record;
        BEGIN
            FOR p IN SELECT schemaname, tablename, policyname FROM pg_policies
                     WHERE schemaname IN ('raw', 'app', 'ops')
            LOOP
                EXECUTE format('DROP POLICY %I ON %I.%I', p.policyname, p.schemaname, p.tablename);
            END LOOP;
        END
        $$;
        DO $$
        DECLARE t record;
        BEGIN
            FOR t IN SELECT schemaname, tablename FROM pg_tables
                     WHERE schemaname IN ('raw', 'app', 'ops')
            LOOP
                EXECUTE format('ALTER TABLE %I.%I NO FORCE ROW LEVEL SECURITY',
                               t.schemaname, t.tablename);
                EXECUTE format('ALTER TABLE %I.%I DISABLE ROW LEVEL SECURITY',
                               t.schemaname, t.tablename);
            END LOOP;
        END
        $$;
        DROP FUNCTION app.visible_contact_ids(), app.visible_client_ids(), app.session_location(),
            app.session_role(), app.session_user_id(), app.end_session(),
            app.issue_session(uuid, interval);
        REVOKE ALL ON ALL TABLES IN SCHEMA app, raw, ops FROM trainu_app, trainu_auth;
        REVOKE ALL ON SCHEMA app, raw, ops FROM trainu_app, trainu_auth;
        """
    )

"""How each studio reaches GHL, and the secrets that prove it, encrypted.

`app.ghl_connections` holds one row per installation: a Marketplace OAuth install on a
location or on an agency (company), or a studio's Private Integration token. Its secrets
(access token, single-use refresh token, the PIT) are stored only as Fernet tokens made by
`trainu_dagster.connections.secret_box`; the database never sees them in plain text.
`app.workflow_webhook_secrets` holds each studio's workflow-webhook secrets, two valid
while one is being rotated out.

The app role reads a connection's state (kind, status, expiry, last refresh, last error)
through column grants, an owner only their own studio's; it cannot select a secret column
at all, and reads nothing of the webhook secrets. A refresher (OAuth, later) takes the
connection's row lock (`SELECT ... FOR UPDATE`) so one process at a time spends a
single-use refresh token, and commits the new pair before using it.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

OWNER = "location_id = (SELECT app.session_location()) AND (SELECT app.session_role()) = 'owner'"
VISIBLE = (
    "id, kind, company_id, location_id, scopes, status, token_expires_at, last_refreshed_at, "
    "last_error, created_at, updated_at"
)


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE app.ghl_connections (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            kind text NOT NULL CHECK (kind IN
                ('oauth_location', 'oauth_company', 'private_integration', 'env_token')),
            company_id text,
            location_id text REFERENCES app.locations,
            scopes text[] NOT NULL DEFAULT '{{}}',
            status text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'needs_reauth', 'uninstalled')),
            access_token_sealed text,
            refresh_token_sealed text,
            token_expires_at timestamptz,
            last_refreshed_at timestamptz,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT company_installs_have_no_location
                CHECK ((kind = 'oauth_company') = (location_id IS NULL)),
            CONSTRAINT company_installs_name_their_company
                CHECK (kind <> 'oauth_company' OR company_id IS NOT NULL),
            CONSTRAINT only_oauth_refreshes
                CHECK (refresh_token_sealed IS NULL OR kind IN ('oauth_location', 'oauth_company')),
            CONSTRAINT an_active_connection_has_a_token
                CHECK (status <> 'active' OR kind = 'env_token' OR access_token_sealed IS NOT NULL)
        );
        CREATE UNIQUE INDEX ghl_connections_one_per_location
            ON app.ghl_connections (location_id) WHERE location_id IS NOT NULL;
        CREATE UNIQUE INDEX ghl_connections_one_per_company
            ON app.ghl_connections (company_id) WHERE kind = 'oauth_company';
        COMMENT ON TABLE app.ghl_connections IS
            'How each studio (or agency) reaches GHL; *_sealed columns are Fernet tokens.';
        ALTER TABLE app.ghl_connections ENABLE ROW LEVEL SECURITY;
        ALTER TABLE app.ghl_connections FORCE ROW LEVEL SECURITY;
        GRANT SELECT ({VISIBLE}) ON app.ghl_connections TO trainu_app;
        CREATE POLICY ghl_connections_select ON app.ghl_connections FOR SELECT TO trainu_app
            USING ({OWNER});

        CREATE TABLE app.workflow_webhook_secrets (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            location_id text NOT NULL REFERENCES app.locations,
            secret_sealed text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz
        );
        CREATE INDEX workflow_webhook_secrets_by_location
            ON app.workflow_webhook_secrets (location_id);
        COMMENT ON TABLE app.workflow_webhook_secrets IS
            'Per-studio workflow-webhook secrets (Fernet tokens); a rotated-out one expires.';
        ALTER TABLE app.workflow_webhook_secrets ENABLE ROW LEVEL SECURITY;
        ALTER TABLE app.workflow_webhook_secrets FORCE ROW LEVEL SECURITY;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE app.workflow_webhook_secrets; DROP TABLE app.ghl_connections;")

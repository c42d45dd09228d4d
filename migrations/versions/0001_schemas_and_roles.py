"""Schemas raw/app/ops and the database roles the app signs in as.

Roles are cluster-wide, so they are created only when missing and never dropped by a
downgrade (another database on the same server may still use them). Database-level
privileges are not copied by CREATE DATABASE ... TEMPLATE, so `migrate.upgrade` sets
them after every run instead of a revision.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trainu_app') THEN
                CREATE ROLE trainu_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
                    NOBYPASSRLS NOREPLICATION NOINHERIT;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trainu_auth') THEN
                CREATE ROLE trainu_auth LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
                    NOBYPASSRLS NOREPLICATION NOINHERIT;
            END IF;
        END
        $$;

        REVOKE ALL ON SCHEMA public FROM PUBLIC;

        CREATE SCHEMA raw;
        COMMENT ON SCHEMA raw IS 'Landed GHL data: every webhook delivery and the latest state per entity.';
        CREATE SCHEMA app;
        COMMENT ON SCHEMA app IS 'Product data written by TrainU: users, clients, goals, messages, insights, events.';
        CREATE SCHEMA ops;
        COMMENT ON SCHEMA ops IS 'Operations: the sync dead-letter queue.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP SCHEMA ops CASCADE;
        DROP SCHEMA app CASCADE;
        DROP SCHEMA raw CASCADE;
        """
    )

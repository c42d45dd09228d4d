"""Escalations the owner handles: who it is assigned to, and when and how it was resolved.

An escalated message (a crisis, a complaint, a medical question: `escalation_reason`)
stays `escalated`; `escalation_resolved_at` closes it, with who closed it and a note.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = (
    "escalation_assignee, escalation_resolved_at, escalation_resolved_by, escalation_resolution"
)


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE app.messages
            ADD COLUMN escalation_assignee uuid REFERENCES app.users,
            ADD COLUMN escalation_resolved_at timestamptz,
            ADD COLUMN escalation_resolved_by uuid REFERENCES app.users,
            ADD COLUMN escalation_resolution text,
            ADD CONSTRAINT messages_escalation_resolved CHECK (
                (escalation_resolved_at IS NULL) = (escalation_resolved_by IS NULL)
                AND (escalation_resolved_at IS NULL OR escalation_resolution IS NOT NULL));
        CREATE INDEX messages_open_escalations_idx ON app.messages (location_id, created_at)
            WHERE status = 'escalated' AND escalation_resolved_at IS NULL;
        GRANT UPDATE ({COLUMNS}) ON app.messages TO trainu_app;
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        REVOKE UPDATE ({COLUMNS}) ON app.messages FROM trainu_app;
        DROP INDEX app.messages_open_escalations_idx;
        ALTER TABLE app.messages DROP CONSTRAINT messages_escalation_resolved,
            DROP COLUMN escalation_assignee, DROP COLUMN escalation_resolved_at,
            DROP COLUMN escalation_resolved_by, DROP COLUMN escalation_resolution;
        """
    )

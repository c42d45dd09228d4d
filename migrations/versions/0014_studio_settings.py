"""The owner's sending settings per studio, and the kill switch.

Quiet hours (local time, default 08:00-21:00), frequency caps per client (default at most
1 message a day and 3 a week), the link domains drafts may carry, and `sending_paused_at`:
while set, nothing goes out for the studio. The owner changes them from the app (the app
role may update these columns, and RLS lets only the studio's owner do so).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = (
    "draft_voice, quiet_hours_start, quiet_hours_end, max_messages_per_day, "
    "max_messages_per_week, allowed_link_domains, sending_paused_at, sending_paused_by"
)


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE app.locations
            ADD COLUMN quiet_hours_start time NOT NULL DEFAULT '08:00',
            ADD COLUMN quiet_hours_end time NOT NULL DEFAULT '21:00',
            ADD COLUMN max_messages_per_day integer NOT NULL DEFAULT 1
                CHECK (max_messages_per_day BETWEEN 0 AND 20),
            ADD COLUMN max_messages_per_week integer NOT NULL DEFAULT 3
                CHECK (max_messages_per_week BETWEEN 0 AND 50),
            ADD COLUMN allowed_link_domains text[] NOT NULL DEFAULT '{{}}',
            ADD COLUMN sending_paused_at timestamptz,
            ADD COLUMN sending_paused_by uuid REFERENCES app.users,
            ADD CONSTRAINT locations_quiet_hours_open CHECK (quiet_hours_start < quiet_hours_end),
            ADD CONSTRAINT locations_caps_consistent
                CHECK (max_messages_per_day <= max_messages_per_week),
            ADD CONSTRAINT locations_pause_attributed
                CHECK (sending_paused_at IS NULL OR sending_paused_by IS NOT NULL);
        COMMENT ON COLUMN app.locations.sending_paused_at IS
            'The kill switch: while set, no message is sent for this studio.';
        GRANT UPDATE ({COLUMNS}) ON app.locations TO trainu_app;
        CREATE POLICY locations_update_owner ON app.locations FOR UPDATE TO trainu_app
            USING (location_id = (SELECT app.session_location())
                   AND (SELECT app.session_role()) = 'owner')
            WITH CHECK (location_id = (SELECT app.session_location())
                        AND (SELECT app.session_role()) = 'owner');
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP POLICY locations_update_owner ON app.locations;
        REVOKE UPDATE ({COLUMNS}) ON app.locations FROM trainu_app;
        ALTER TABLE app.locations
            DROP COLUMN quiet_hours_start, DROP COLUMN quiet_hours_end,
            DROP COLUMN max_messages_per_day, DROP COLUMN max_messages_per_week,
            DROP COLUMN allowed_link_domains, DROP COLUMN sending_paused_at,
            DROP COLUMN sending_paused_by;
        """
    )

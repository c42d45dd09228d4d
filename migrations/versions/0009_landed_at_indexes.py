"""Indexes for "what landed since": dbt's incremental models and routine tests read only
the rows that landed after their last run, which without these is a full scan each time.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LANDED = ["ghl_contacts", "ghl_appointments", "ghl_messages", "ghl_opportunities"]


def upgrade() -> None:
    for table in LANDED:
        op.execute(f"CREATE INDEX {table}_landed_idx ON raw.{table} (landed_at);")
    op.execute(
        "CREATE INDEX ghl_appointment_start_times_seen_idx"
        " ON raw.ghl_appointment_start_times (first_seen_at);"
    )


def downgrade() -> None:
    op.execute("DROP INDEX raw.ghl_appointment_start_times_seen_idx;")
    for table in LANDED:
        op.execute(f"DROP INDEX raw.{table}_landed_idx;")

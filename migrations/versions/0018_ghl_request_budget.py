"""GHL's request budget, shared by every process that calls GHL for a studio.

GHL allows 100 requests per 10 s and 200,000 per day per location, for all of an app's
callers together: a send run and a pull run are separate processes, so the budget that
keeps them under the limit lives here (`connections.request_budget.PostgresRequestBudget`).

- `ops.ghl_request_budget`: one row per studio, locked while a request takes its slot (so
  two processes never both take the last one), with the day's count (UTC days).
- `ops.ghl_requests`: the sliding log. A row is written when a request takes its slot
  (`answered_at` NULL: in flight, it holds the slot) and stamped when its answer arrives;
  it counts against the window until `answered_at` + the window. A row left in flight by a
  process that died stops counting after a bound longer than any request can take, and
  rows out of the window are deleted as slots are taken.

Only the pipelines' administrative role uses these tables: the app role has no grant, and
RLS is forced as on every table.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.ghl_request_budget (
            location_id text PRIMARY KEY,
            day date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
            used integer NOT NULL DEFAULT 0 CHECK (used >= 0)
        );
        COMMENT ON TABLE ops.ghl_request_budget IS
            'Per GHL location: locked to take a request slot; requests started this UTC day.';
        CREATE TABLE ops.ghl_requests (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            location_id text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            answered_at timestamptz,
            holder text,
            CHECK (answered_at IS NULL OR answered_at >= started_at)
        );
        CREATE INDEX ghl_requests_location_idx ON ops.ghl_requests (location_id, answered_at);
        COMMENT ON TABLE ops.ghl_requests IS
            'Sliding log of GHL requests per location: in flight (answered_at NULL) or answered.';
        ALTER TABLE ops.ghl_request_budget ENABLE ROW LEVEL SECURITY;
        ALTER TABLE ops.ghl_request_budget FORCE ROW LEVEL SECURITY;
        ALTER TABLE ops.ghl_requests ENABLE ROW LEVEL SECURITY;
        ALTER TABLE ops.ghl_requests FORCE ROW LEVEL SECURITY;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ops.ghl_requests, ops.ghl_request_budget;")

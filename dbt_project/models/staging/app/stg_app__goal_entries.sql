-- One row per goal entry. (goal_id, recorded_at) is unique in app.goal_entries (a table
-- constraint: a second entry at the same instant is refused as a double submit), so
-- there is nothing left to deduplicate here.
select
    id as goal_entry_id,
    location_id,
    goal_id,
    client_id,
    value,
    recorded_at
from {{ source('app', 'goal_entries') }}

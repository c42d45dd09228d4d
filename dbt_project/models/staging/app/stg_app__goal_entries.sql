-- (goal_id, recorded_at) is unique in the app; a second entry at the same instant
-- would be a double submit, so the latest written wins.
select distinct on (goal_id, recorded_at)
    id as goal_entry_id,
    location_id,
    goal_id,
    client_id,
    value,
    recorded_at
from {{ source('app', 'goal_entries') }}
order by goal_id, recorded_at, created_at desc

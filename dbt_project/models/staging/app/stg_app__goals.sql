select
    id as goal_id,
    location_id,
    client_id,
    goal_type,
    title,
    unit,
    direction,
    baseline_value,
    target_value,
    start_date,
    target_date,
    status
from {{ source('app', 'goals') }}

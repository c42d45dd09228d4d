select
    location_id,
    name as location_name,
    coalesce(nullif(timezone, ''), 'UTC') as timezone
from {{ source('app', 'locations') }}

select
    location_id,
    appointment_id,
    start_time as start_at,
    first_seen_at
from {{ source('raw', 'ghl_appointment_start_times') }}

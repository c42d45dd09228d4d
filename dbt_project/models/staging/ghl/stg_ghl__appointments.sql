-- GHL sends times with the studio's offset; raw stores them as timestamptz (UTC).
-- Local dates are derived in the marts, from the location's timezone.
select
    location_id,
    appointment_id,
    calendar_id,
    contact_id,
    assigned_user_id as trainer_user_id,
    status,
    title,
    start_time as start_at,
    end_time as end_at,
    date_added as booked_at,
    source_updated_at as updated_at,
    deleted_at is not null as is_deleted,
    landed_at
from {{ source('raw', 'ghl_appointments') }}

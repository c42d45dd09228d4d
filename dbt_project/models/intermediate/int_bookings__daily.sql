{{ config(materialized='table') }}
-- Bookings counted per studio, trainer and local day: one pass over bookings that every
-- show-rate mart rolls up from. Deleted and invalid bookings never count.

select
    location_id,
    trainer_user_id,
    local_date,
    count(*) as booked,
    count(*) filter (where outcome = 'showed') as showed,
    count(*) filter (where outcome = 'no_show') as no_shows,
    count(*) filter (where outcome = 'cancelled') as cancelled,
    count(*) filter (where outcome = 'late_cancelled') as late_cancelled,
    count(*) filter (where outcome = 'open' and end_at <= {{ as_of() }}) as unmarked,
    count(*) filter (where outcome = 'open' and end_at > {{ as_of() }}) as upcoming,
    count(*) filter (where is_first_session) as first_sessions,
    count(*) filter (where was_rescheduled) as rescheduled
from {{ ref('bookings') }}
where not is_deleted and outcome <> 'invalid'
group by location_id, trainer_user_id, local_date

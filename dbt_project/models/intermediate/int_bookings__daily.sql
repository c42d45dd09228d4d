{{
    config(
        materialized='incremental',
        unique_key=['location_id', 'local_date'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['location_id', 'local_date']}],
        post_hook="delete from {{ this }} where booked = 0",
    )
}}
-- Bookings counted per studio, trainer and local day: one pass over bookings that every
-- show-rate mart rolls up from. Deleted and invalid bookings never count.
--
-- Incremental: recounts whole studio-days. A day is recounted when one of its bookings
-- changed since the last count (counted_through), on the day it is on now and on every
-- day it was seen at before, and when one of its open bookings ended between the last
-- count's as_of and this one (it turns from upcoming to unmarked). A day left with no
-- bookings at all gets a zero row, so that the delete+insert clears it; the post-hook
-- then drops the zero rows.
-- depends_on: {{ ref('stg_ghl__appointment_start_times') }}

{% if is_incremental() %}
{%- set last_as_of = watermark('counted_as_of') %}
with changed as (
    select location_id, appointment_id, local_date, timezone
    from {{ ref('bookings') }}
    where changed_at > {{ watermark('counted_through') }}
),

days as (
    select location_id, local_date from changed
    union
    select changed.location_id, (moved.start_at at time zone changed.timezone)::date
    from changed
    inner join {{ ref('stg_ghl__appointment_start_times') }} as moved
        using (location_id, appointment_id)
    union
    select location_id, local_date
    from {{ ref('bookings') }}
    where outcome = 'open'
        and end_at > least({{ last_as_of }}, {{ as_of() }})
        and end_at <= greatest({{ last_as_of }}, {{ as_of() }})
),

counted as (
    select bookings.*
    from {{ ref('bookings') }} as bookings
    inner join days using (location_id, local_date)
),
{% else %}
with counted as (
    select * from {{ ref('bookings') }}
),
{% endif %}

per_day as (
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
    from counted
    where not is_deleted and outcome <> 'invalid'
    group by location_id, trainer_user_id, local_date
),

{% if is_incremental() %}
emptied as (
    select location_id, null::text as trainer_user_id, local_date,
        0, 0, 0, 0, 0, 0, 0, 0, 0
    from days
    where not exists (
        select from per_day
        where per_day.location_id = days.location_id and per_day.local_date = days.local_date
    )
),

{% endif %}
counts as (
    select * from per_day
    {% if is_incremental() %}
    union all
    select * from emptied
    {% endif %}
)

select
    counts.*,
    (select max(changed_at) from {{ ref('bookings') }}) as counted_through,
    {{ as_of() }} as counted_as_of
from counts

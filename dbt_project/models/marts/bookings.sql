{{
    config(
        materialized='incremental',
        unique_key=['location_id', 'appointment_id'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- One row per GHL appointment with its final outcome, in the studio's local time.
--
-- Incremental: a run recomputes every booking of each contact with a changed booking
-- (landed since the last run, or seen at a new start time), because one changed booking
-- can change which of the contact's bookings is their first session. Deleted
-- appointments stay as rows flagged is_deleted, so a delete replaces the old row.
-- A change of late_cancel_hours or of a studio's timezone needs --full-refresh.

with appointments as (
    select * from {{ ref('stg_ghl__appointments') }}
),

{% if is_incremental() %}
watermark as (
    select coalesce(max(landed_at), '-infinity'::timestamptz) as landed_at from {{ this }}
),

landed as (
    select * from appointments where landed_at > (select landed_at from watermark)
),

changed_contacts as (
    select location_id, contact_id from landed
    union
    select a.location_id, a.contact_id
    from {{ ref('stg_ghl__appointment_start_times') }} as moved
    inner join appointments as a using (location_id, appointment_id)
    where moved.first_seen_at > (select landed_at from watermark)
    union
    -- an appointment moved to another contact leaves its old contact changed too
    select old.location_id, old.contact_id
    from {{ this }} as old
    inner join landed using (location_id, appointment_id)
),

scope as (
    -- equality on coalesce(), not "is not distinct from", so Postgres can hash-join
    select a.*
    from appointments as a
    inner join changed_contacts as c
        on a.location_id = c.location_id
        and coalesce(a.contact_id, '') = coalesce(c.contact_id, '')
),
{% else %}
scope as (
    select * from appointments
),
{% endif %}

moves as (
    select moved.location_id, moved.appointment_id, count(*) as start_times_seen
    from {{ ref('stg_ghl__appointment_start_times') }} as moved
    inner join scope using (location_id, appointment_id)
    group by moved.location_id, moved.appointment_id
),

located as (
    select
        scope.*,
        coalesce(locations.timezone, 'UTC') as timezone,
        scope.start_at at time zone coalesce(locations.timezone, 'UTC') as start_local,
        coalesce(moves.start_times_seen, 1) > 1 as was_rescheduled
    from scope
    left join {{ ref('stg_app__locations') }} as locations using (location_id)
    left join moves using (location_id, appointment_id)
),

classified as (
    select
        *,
        case when status = 'cancelled' then updated_at end as cancelled_at,
        case
            when status = 'cancelled'
                then extract(epoch from start_at - updated_at) / 3600.0
        end as cancel_notice_hours
    from located
),

outcomes as (
    -- Time-free on purpose: an incremental row is not revisited as time passes, so
    -- "past but never marked" is decided downstream against as_of().
    select
        *,
        case
            when status = 'showed' then 'showed'
            when status = 'noshow' then 'no_show'
            when status = 'cancelled' and cancel_notice_hours < {{ var('late_cancel_hours') }}
                then 'late_cancelled'
            when status = 'cancelled' then 'cancelled'
            when status = 'invalid' then 'invalid'
            else 'open'
        end as outcome
    from classified
),

sessions as (
    -- A client's sessions: bookings that were not called off, in start order.
    select
        location_id,
        appointment_id,
        row_number() over (
            partition by location_id, contact_id order by start_at, appointment_id
        ) as session_number
    from outcomes
    where not is_deleted and outcome in ('showed', 'no_show', 'open')
)

select
    o.location_id,
    o.appointment_id,
    o.contact_id,
    o.trainer_user_id,
    o.calendar_id,
    o.status,
    o.outcome,
    o.is_deleted,
    o.start_at,
    o.end_at,
    o.booked_at,
    o.updated_at,
    o.timezone,
    o.start_local,
    o.start_local::date as local_date,
    date_trunc('week', o.start_local)::date as local_week,
    date_trunc('month', o.start_local)::date as local_month,
    round((extract(epoch from o.start_at - o.booked_at) / 3600.0)::numeric, 2) as lead_time_hours,
    o.was_rescheduled,
    o.cancelled_at,
    round(o.cancel_notice_hours::numeric, 2) as cancel_notice_hours,
    s.session_number,
    coalesce(s.session_number = 1, false) as is_first_session,
    o.landed_at
from outcomes as o
left join sessions as s using (location_id, appointment_id)

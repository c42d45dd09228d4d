{{
    config(
        materialized='incremental',
        unique_key=['location_id', 'appointment_id'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['location_id', 'appointment_id'], 'unique': True},
            {'columns': ['landed_at']},
            {'columns': ['changed_at']},
            {'columns': ['location_id', 'local_date']},
            {'columns': ['end_at']},
            {'columns': ['location_id', 'contact_id', 'start_at']},
        ],
    )
}}
-- One row per GHL appointment with its final outcome, in the studio's local time.
--
-- Incremental: a run recomputes the appointments whose data landed since the last run
-- (or that were seen at a new start time), and renumbers the sessions of their contacts,
-- because one changed booking can change which of a contact's bookings is their first
-- session; the contact's other bookings come from this table as they are. Only rows
-- with a changed value are written, stamped changed_at. Deleted appointments stay as
-- rows flagged is_deleted, so a delete replaces the old row. A change of
-- late_cancel_hours or of a studio's timezone needs --full-refresh.

{% if is_incremental() %}
{% set landed_since = watermark('landed_at') %}
with changed as (
    select * from {{ ref('stg_ghl__appointments') }}
    where landed_at > {{ landed_since }}
    union
    select a.*
    from {{ ref('stg_ghl__appointment_start_times') }} as moved
    inner join {{ ref('stg_ghl__appointments') }} as a using (location_id, appointment_id)
    where moved.first_seen_at > {{ landed_since }}
),

changed_contacts as (
    select location_id, contact_id from changed
    union
    -- an appointment moved to another contact leaves its old contact changed too
    select old.location_id, old.contact_id
    from {{ this }} as old
    inner join changed using (location_id, appointment_id)
),
{% else %}
with changed as (
    select * from {{ ref('stg_ghl__appointments') }}
),
{% endif %}

moves as (
    -- appointments seen at more than one start time
    select moved.location_id, moved.appointment_id
    from {{ ref('stg_ghl__appointment_start_times') }} as moved
    {% if is_incremental() %}
    inner join changed using (location_id, appointment_id)
    {% endif %}
    group by moved.location_id, moved.appointment_id
    having count(*) > 1
),

located as (
    select
        changed.*,
        coalesce(locations.timezone, 'UTC') as timezone,
        changed.start_at at time zone coalesce(locations.timezone, 'UTC') as start_local,
        moves.appointment_id is not null as was_rescheduled
    from changed
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

{#- described's columns, for the rows read back from this table #}
{%- set described_columns = ['location_id', 'appointment_id', 'contact_id', 'trainer_user_id',
    'calendar_id', 'status', 'outcome', 'is_deleted', 'start_at', 'end_at', 'booked_at',
    'updated_at', 'timezone', 'start_local', 'local_date', 'local_week', 'local_month',
    'lead_time_hours', 'was_rescheduled', 'cancelled_at', 'cancel_notice_hours',
    'landed_at'] %}
described as (
    select
        location_id,
        appointment_id,
        contact_id,
        trainer_user_id,
        calendar_id,
        status,
        outcome,
        is_deleted,
        start_at,
        end_at,
        booked_at,
        updated_at,
        timezone,
        start_local,
        start_local::date as local_date,
        date_trunc('week', start_local)::date as local_week,
        date_trunc('month', start_local)::date as local_month,
        round((extract(epoch from start_at - booked_at) / 3600.0)::numeric, 2) as lead_time_hours,
        was_rescheduled,
        cancelled_at,
        round(cancel_notice_hours::numeric, 2) as cancel_notice_hours,
        landed_at
    from outcomes
),

{% if is_incremental() %}
others as (
    -- the changed contacts' other bookings, as they stand
    select b.*
    from {{ this }} as b
    inner join changed_contacts using (location_id, contact_id)
    union all
    -- appointments without a contact number their sessions together, per studio
    select b.*
    from {{ this }} as b
    where b.contact_id is null
        and b.location_id in (
            select location_id from changed_contacts where contact_id is null
        )
),

contacts_bookings as (
    select * from described
    union all
    select {{ described_columns | join(', ') }}
    from others
    where (location_id, appointment_id) not in (
        select location_id, appointment_id from changed
    )
),
{% else %}
contacts_bookings as (
    select * from described
),
{% endif %}

sessions as (
    -- A client's sessions: bookings that were not called off, numbered in start order.
    select
        *,
        not is_deleted and outcome in ('showed', 'no_show', 'open') as is_session
    from contacts_bookings
),

rebuilt as (
    select
        {{ described_columns | join(',\n        ') }},
        case when is_session then session_number end as session_number,
        is_session and session_number = 1 as is_first_session
    from (
        select
            *,
            row_number() over (
                partition by location_id, contact_id, is_session order by start_at, appointment_id
            ) as session_number
        from sessions
    ) as numbered
)

{% if is_incremental() %}
-- Of the recomputed bookings, only those with a changed value are written, stamped
-- changed_at: what reads bookings incrementally (the daily rollup) then recounts just
-- the days with a real change, not every booking of the contacts recomputed here.
{%- set compared = adapter.get_columns_in_relation(this) | map(attribute='name')
    | reject('in', ['location_id', 'appointment_id', 'changed_at']) | list %}
select rebuilt.*, now() as changed_at
from rebuilt
left join {{ this }} as previous using (location_id, appointment_id)
where previous.appointment_id is null
    {%- for column in compared %}
    or rebuilt.{{ column }} is distinct from previous.{{ column }}
    {%- endfor %}
{% else %}
select *, now() as changed_at from rebuilt
{% endif %}

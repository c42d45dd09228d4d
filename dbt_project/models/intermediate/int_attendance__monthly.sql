{{
    config(
        materialized='incremental',
        unique_key=['location_id', 'contact_id'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['location_id', 'contact_id']}],
        post_hook="delete from {{ this }} where local_month is null",
    )
}}
-- Per studio, client and local month: the sessions the client attended (bookings with
-- outcome showed; deleted ones never count), and when the first of them began. What
-- client_retention counts from: a row per client-month instead of a million bookings.
--
-- Incremental: recounts whole clients, every month of each client with a booking changed
-- since the last count (counted_through), read through the bookings index on (location_id,
-- contact_id, start_at). A client left with no attended session gets one row with no
-- month, so that the delete+insert clears theirs; the post-hook then drops it.

{% if is_incremental() %}
with changed as (
    select distinct location_id, contact_id
    from {{ ref('bookings') }}
    where changed_at > {{ watermark('counted_through') }} and contact_id is not null
),

counted as (
    select bookings.*
    from {{ ref('bookings') }} as bookings
    inner join changed using (location_id, contact_id)
),
{% else %}
with counted as (
    select * from {{ ref('bookings') }}
    where contact_id is not null
),
{% endif %}

attended as (
    select
        location_id,
        contact_id,
        local_month,
        count(*) as sessions,
        min(start_at) as first_attended_at
    from counted
    where outcome = 'showed' and not is_deleted
    group by location_id, contact_id, local_month
)

{% if is_incremental() %}
, emptied as (
    select location_id, contact_id, null::date, 0::bigint, null::timestamptz
    from changed
    where not exists (
        select from attended
        where attended.location_id = changed.location_id
            and attended.contact_id = changed.contact_id
    )
)
{% endif %}

select
    counts.*,
    (select max(changed_at) from {{ ref('bookings') }}) as counted_through
from (
    select * from attended
    {% if is_incremental() %}
    union all
    select * from emptied
    {% endif %}
) as counts

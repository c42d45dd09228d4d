-- Per studio and local month: who came, who stayed, who came back and who stopped, from
-- the sessions clients attended (bookings with outcome showed; deleted ones never count).
-- A client is a GHL contact; a month is the studio's local calendar month.
--
-- active       = attended at least one session in the month
-- new          = active, and the month is the one of their first attended session ever
-- retained     = active this month and the month before
-- reactivated  = active this month, not the month before, but in some earlier month
-- churned      = active the month before, not this month
-- previous_active = active the month before (= retained + churned)
-- retention_rate  = retained / previous_active; null when nobody was active the month before
--
-- active = new + retained + reactivated. Every month from a studio's first attended
-- session through the month of as_of() is reported, quiet ones too (their churn counts);
-- the month of as_of() is to date, so someone who came last month and has not come yet
-- this month counts as churned so far.

with attended as (
    -- the months each client attended a session that had begun by as_of()
    select location_id, contact_id, local_month
    from {{ ref('int_attendance__monthly') }}
    where first_attended_at <= {{ as_of() }}
),

firsts as (
    select location_id, contact_id, min(local_month) as first_month
    from attended
    group by location_id, contact_id
),

months as (
    select
        spans.location_id,
        month::date as local_month
    from (
        select
            attended.location_id,
            min(attended.local_month) as first_month,
            date_trunc(
                'month', {{ as_of() }} at time zone coalesce(locations.timezone, 'UTC')
            )::date as current_month
        from attended
        left join {{ ref('stg_app__locations') }} as locations
            on attended.location_id = locations.location_id
        group by attended.location_id, locations.timezone
    ) as spans
    cross join lateral generate_series(
        spans.first_month, spans.current_month, interval '1 month'
    ) as month
),

active as (
    select
        this_month.location_id,
        this_month.local_month,
        count(*)::integer as active,
        count(*) filter (where firsts.first_month = this_month.local_month)::integer as new,
        count(*) filter (where before.contact_id is not null)::integer as retained,
        count(*) filter (
            where before.contact_id is null and firsts.first_month < this_month.local_month
        )::integer as reactivated
    from attended as this_month
    inner join firsts
        on this_month.location_id = firsts.location_id
        and this_month.contact_id = firsts.contact_id
    left join attended as before
        on this_month.location_id = before.location_id
        and this_month.contact_id = before.contact_id
        and before.local_month = (this_month.local_month - interval '1 month')::date
    group by this_month.location_id, this_month.local_month
),

previous as (
    select
        last_month.location_id,
        (last_month.local_month + interval '1 month')::date as local_month,
        count(*)::integer as previous_active,
        count(*) filter (where since.contact_id is null)::integer as churned
    from attended as last_month
    left join attended as since
        on last_month.location_id = since.location_id
        and last_month.contact_id = since.contact_id
        and since.local_month = (last_month.local_month + interval '1 month')::date
    group by last_month.location_id, last_month.local_month
)

select
    months.location_id,
    months.local_month,
    (months.local_month + interval '1 month')::date - 1 as local_month_end,
    coalesce(active.active, 0) as active,
    coalesce(active.new, 0) as new,
    coalesce(active.retained, 0) as retained,
    coalesce(active.reactivated, 0) as reactivated,
    coalesce(previous.churned, 0) as churned,
    coalesce(previous.previous_active, 0) as previous_active,
    round(
        coalesce(active.retained, 0)::numeric / nullif(previous.previous_active, 0), 4
    ) as retention_rate
from months
left join active
    on months.location_id = active.location_id
    and months.local_month = active.local_month
left join previous
    on months.location_id = previous.location_id
    and months.local_month = previous.local_month

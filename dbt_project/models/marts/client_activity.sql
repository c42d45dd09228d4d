-- Per client, the attendance and goal signals the risk score reads, as of as_of():
-- days since the last attended session and the client's usual gap between sessions
-- (the median over the last 120 days), sessions attended in the last 28 days against
-- the 28 before (the trend), recent no-shows and cancellations, the next booking, and
-- whether an active goal has stalled (flat or regressing, or no entry for 21 days).
-- trainu_dagster/insights/features.py computes the same columns as of any past day for
-- the backtest; a test holds the two to the same numbers.

with clients as (
    select * from {{ ref('stg_app__clients') }}
),

bookings as (
    -- Bookings of the last 56 days and ahead (the windows below), decided once; the
    -- end_at index finds them without reading years of history.
    select
        location_id,
        contact_id,
        outcome,
        start_at,
        start_at <= {{ as_of() }} as is_past,
        start_at > {{ as_of() }} - interval '28 days' and start_at <= {{ as_of() }}
            as in_last_28d,
        start_at <= {{ as_of() }} - interval '28 days' as in_prior_28d
    from {{ ref('bookings') }}
    where end_at > {{ as_of() }} - interval '56 days'
        and start_at > {{ as_of() }} - interval '56 days'
        and not is_deleted and outcome <> 'invalid'
),

attendance as (
    select
        location_id,
        contact_id,
        count(*) filter (where outcome = 'showed' and in_last_28d) as attended_last_28d,
        count(*) filter (where outcome = 'showed' and in_prior_28d) as attended_prior_28d,
        count(*) filter (where outcome = 'no_show' and in_last_28d) as no_shows_last_28d,
        count(*) filter (
            where outcome in ('cancelled', 'late_cancelled') and in_last_28d
        ) as cancellations_last_28d,
        count(*) filter (
            where outcome = 'late_cancelled' and in_last_28d
        ) as late_cancellations_last_28d,
        min(start_at) filter (where outcome = 'open' and not is_past) as next_booking_at,
        max(start_at) filter (where outcome = 'showed' and is_past) as last_attended_at
    from bookings
    group by location_id, contact_id
),

activity as (
    -- Each client's newest attended session, however long ago: from the windows when
    -- it is recent, else looked up through the (location_id, contact_id, start_at) index.
    select
        clients.*,
        attendance.attended_last_28d,
        attendance.attended_prior_28d,
        attendance.no_shows_last_28d,
        attendance.cancellations_last_28d,
        attendance.late_cancellations_last_28d,
        attendance.next_booking_at,
        coalesce(attendance.last_attended_at, earlier.start_at) as last_attended_at
    from clients
    left join attendance using (location_id, contact_id)
    left join lateral (
        select start_at
        from {{ ref('bookings') }} as b
        where b.location_id = clients.location_id
            and b.contact_id = clients.contact_id
            and b.outcome = 'showed'
            and not b.is_deleted
            and b.start_at <= {{ as_of() }}
            and attendance.last_attended_at is null
        order by b.start_at desc
        limit 1
    ) as earlier on true
),

gaps as (
    -- days between consecutive attended sessions of the last 120 days, per client
    select
        location_id,
        contact_id,
        percentile_cont(0.5) within group (order by gap_days) as usual_gap_days
    from (
        select
            location_id,
            contact_id,
            extract(epoch from start_at - lag(start_at) over (
                partition by location_id, contact_id order by start_at
            )) / 86400.0 as gap_days
        from {{ ref('bookings') }}
        -- end_at (never before start_at) bounds it too, so the end_at index finds them
        where (end_at > {{ as_of() }} - interval '120 days' or end_at is null)
            and outcome = 'showed' and not is_deleted
            and start_at > {{ as_of() }} - interval '120 days'
            and start_at <= {{ as_of() }}
    ) as attended
    where gap_days is not null
    group by location_id, contact_id
),

goals as (
    select
        client_id,
        count(*) filter (where status = 'active') as active_goals,
        count(*) filter (
            where status = 'active'
            and (
                trend in ('flat', 'regressing')
                or latest_recorded_at is null
                or latest_recorded_at < {{ as_of() }} - interval '21 days'
            )
        ) as stalled_goals
    from {{ ref('goal_progress') }}
    group by client_id
)

select
    activity.client_id,
    activity.location_id,
    activity.contact_id,
    activity.trainer_id,
    activity.is_opted_out,
    activity.last_attended_at,
    floor(extract(epoch from {{ as_of() }} - activity.last_attended_at) / 86400)::integer
        as days_since_last_attended,
    round(gaps.usual_gap_days::numeric, 2) as usual_gap_days,
    coalesce(activity.attended_last_28d, 0) as attended_last_28d,
    coalesce(activity.attended_prior_28d, 0) as attended_prior_28d,
    coalesce(activity.attended_last_28d, 0) - coalesce(activity.attended_prior_28d, 0)
        as attendance_trend,
    coalesce(activity.no_shows_last_28d, 0) as no_shows_last_28d,
    coalesce(activity.cancellations_last_28d, 0) as cancellations_last_28d,
    coalesce(activity.late_cancellations_last_28d, 0) as late_cancellations_last_28d,
    activity.next_booking_at,
    coalesce(goals.active_goals, 0) as active_goals,
    coalesce(goals.stalled_goals, 0) > 0 as has_stalled_goal
from activity
left join gaps using (location_id, contact_id)
left join goals using (client_id)

-- Per goal: where the client started, where they are, how far along the way that is,
-- and whether they keep pace with the plan (the original design's v_goal_progress).
--
-- progress          = (latest - baseline) / (target - baseline): 1 at the target, negative
--                     when the client moved away from it; the sign handles "decrease" goals.
-- percent_complete  = progress clamped to 0..1, as a percentage.
-- expected_progress = the share of the planned time (start_date -> target_date) elapsed.
-- is_on_track       = achieved, or progress within 10 points of the expected progress.
-- trend             = least-squares slope of the last 28 days' entries, as a share of the
--                     whole planned change per week: improving above +1%, regressing
--                     below -1%, else flat; fewer than two entries is insufficient_data.

with goals as (
    select * from {{ ref('stg_app__goals') }}
),

entries as (
    select * from {{ ref('stg_app__goal_entries') }}
    where recorded_at <= {{ as_of() }}
),

logged as (
    select
        goal_id,
        count(*) as entries,
        max(recorded_at) as latest_recorded_at,
        (array_agg(value order by recorded_at desc))[1] as latest_value
    from entries
    group by goal_id
),

recent as (
    select
        goal_id,
        count(*) as recent_entries,
        regr_slope(value, extract(epoch from recorded_at) / 86400.0) as slope_per_day
    from entries
    where recorded_at > {{ as_of() }} - interval '28 days'
    group by goal_id
),

measured as (
    select
        goals.*,
        coalesce(logged.latest_value, goals.baseline_value) as latest_value,
        logged.latest_recorded_at,
        coalesce(logged.entries, 0) as entries,
        least(greatest(
            (({{ as_of() }} at time zone coalesce(locations.timezone, 'UTC'))::date
                - goals.start_date)::numeric
            / (goals.target_date - goals.start_date),
            0), 1) as expected_progress,
        case
            when coalesce(recent.recent_entries, 0) >= 2
                then recent.slope_per_day * 7
                    / (goals.target_value - goals.baseline_value)
        end as weekly_pace
    from goals
    left join {{ ref('stg_app__locations') }} as locations using (location_id)
    left join logged using (goal_id)
    left join recent using (goal_id)
),

progressed as (
    select
        *,
        (latest_value - baseline_value) / (target_value - baseline_value) as progress
    from measured
)

select
    goal_id,
    location_id,
    client_id,
    goal_type,
    title,
    unit,
    direction,
    status,
    start_date,
    target_date,
    baseline_value,
    target_value,
    latest_value,
    latest_recorded_at,
    entries,
    round(progress, 4) as progress,
    round(100 * least(greatest(progress, 0), 1), 1) as percent_complete,
    round(expected_progress, 4) as expected_progress,
    status = 'achieved' or progress >= expected_progress - 0.10 as is_on_track,
    round(weekly_pace::numeric, 4) as weekly_pace,
    case
        when weekly_pace is null then 'insufficient_data'
        when weekly_pace > 0.01 then 'improving'
        when weekly_pace < -0.01 then 'regressing'
        else 'flat'
    end as trend
from progressed

{#
    Show-rate = showed / (showed + no-shows + late cancellations): of the sessions the
    studio had to hold, the share the client came to. Early cancellations free the slot,
    so they do not count against it; with nothing to hold, the rate is null, not 0.
#}
{% macro show_rate_rollup(period, by_trainer) %}
with days as (
    select
        *,
        date_trunc('{{ period }}', local_date)::date as period_start
    from {{ ref('int_bookings__daily') }}
),

rolled as (
    select
        location_id,
        {% if by_trainer %}trainer_user_id,{% endif %}
        period_start,
        sum(booked)::integer as booked,
        sum(showed)::integer as showed,
        sum(no_shows)::integer as no_shows,
        sum(cancelled)::integer as cancelled,
        sum(late_cancelled)::integer as late_cancelled,
        sum(unmarked)::integer as unmarked,
        sum(upcoming)::integer as upcoming,
        sum(first_sessions)::integer as first_sessions,
        sum(rescheduled)::integer as rescheduled
    from days
    group by location_id, {% if by_trainer %}trainer_user_id, {% endif %}period_start
)

select
    {% if by_trainer %}
    rolled.location_id,
    rolled.trainer_user_id,
    trainers.trainer_id,
    trainers.trainer_name,
    {% else %}
    rolled.location_id,
    locations.location_name,
    {% endif %}
    rolled.period_start,
    (rolled.period_start + interval '1 {{ period }}')::date - 1 as period_end,
    rolled.booked,
    rolled.showed,
    rolled.no_shows,
    rolled.cancelled,
    rolled.late_cancelled,
    rolled.unmarked,
    rolled.upcoming,
    rolled.first_sessions,
    rolled.rescheduled,
    round(
        rolled.showed::numeric
        / nullif(rolled.showed + rolled.no_shows + rolled.late_cancelled, 0),
        4
    ) as show_rate
from rolled
{% if by_trainer %}
left join {{ ref('stg_app__trainers') }} as trainers
    on rolled.location_id = trainers.location_id
    and rolled.trainer_user_id = trainers.trainer_user_id
{% else %}
left join {{ ref('stg_app__locations') }} as locations
    on rolled.location_id = locations.location_id
{% endif %}
{% endmacro %}

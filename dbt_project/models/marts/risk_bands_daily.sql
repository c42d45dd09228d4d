{{
    config(
        materialized='incremental',
        unique_key=['location_id', 'local_date'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['location_id', 'local_date']}],
    )
}}
-- Per studio, local day and risk band: how many clients were in the band that day, each
-- client counted once, by their latest score of the day (app.insights keeps every score:
-- a client scored twice in a day, or by two model versions, is counted by the last one).
--
-- Incremental: recounts whole studio-days, from the local day before the newest score
-- already counted (scored_through) onwards; scores are written at the time they are
-- made, so nothing older arrives later. A change of a studio's timezone needs
-- --full-refresh.

with scores as (
    select
        insights.insight_id,
        insights.location_id,
        insights.client_id,
        insights.scored_at,
        insights.created_at,
        insights.risk_band,
        (insights.scored_at at time zone coalesce(locations.timezone, 'UTC'))::date
            as local_date
    from {{ ref('stg_app__insights') }} as insights
    left join {{ ref('stg_app__locations') }} as locations
        on insights.location_id = locations.location_id
    {% if is_incremental() %}
    {%- set scored_through = watermark('scored_through') %}
    -- whole local days from the one before the newest counted; the first condition is
    -- the same bound loosened to the widest UTC offset, for the (location_id, scored_at)
    -- index
    where insights.scored_at >= {{ scored_through }} - interval '3 days'
        and insights.scored_at >= (
            date_trunc(
                'day', {{ scored_through }} at time zone coalesce(locations.timezone, 'UTC')
            ) - interval '1 day'
        ) at time zone coalesce(locations.timezone, 'UTC')
    {% endif %}
),

latest as (
    select distinct on (location_id, client_id, local_date)
        location_id,
        client_id,
        local_date,
        risk_band,
        scored_at
    from scores
    order by location_id, client_id, local_date, scored_at desc, created_at desc, insight_id desc
)

select
    location_id,
    local_date,
    risk_band,
    count(*)::integer as clients,
    max(scored_at) as scored_through
from latest
group by location_id, local_date, risk_band

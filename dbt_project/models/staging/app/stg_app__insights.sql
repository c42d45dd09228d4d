-- One row per risk score: a client scored by the rules on a day (insights/client_risk),
-- kept as history; the band is what the dashboards count.
select
    id as insight_id,
    location_id,
    client_id,
    scored_at,
    risk_score,
    risk_band,
    reason,
    model_version,
    created_at
from {{ source('app', 'insights') }}

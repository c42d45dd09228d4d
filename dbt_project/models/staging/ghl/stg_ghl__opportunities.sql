select
    location_id,
    opportunity_id,
    contact_id,
    pipeline_id,
    pipeline_stage_id,
    status,
    monetary_value,
    assigned_to as trainer_user_id,
    source_updated_at as updated_at,
    deleted_at is not null as is_deleted,
    landed_at
from {{ source('raw', 'ghl_opportunities') }}

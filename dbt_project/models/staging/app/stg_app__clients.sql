select
    id as client_id,
    location_id,
    ghl_contact_id as contact_id,
    trainer_id,
    name as client_name,
    timezone,
    opted_out_at,
    opted_out_at is not null as is_opted_out,
    created_at
from {{ source('app', 'clients') }}

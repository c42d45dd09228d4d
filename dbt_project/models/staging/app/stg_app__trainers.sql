select
    id as trainer_id,
    location_id,
    ghl_user_id as trainer_user_id,
    name as trainer_name,
    active as is_active
from {{ source('app', 'trainers') }}

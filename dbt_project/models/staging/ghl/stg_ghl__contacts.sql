-- Raw rows are already one per (location_id, contact_id): the landing upsert keeps the
-- newest version, so staging only renames and types.
select
    location_id,
    contact_id,
    nullif(trim(concat_ws(' ', first_name, last_name)), '') as full_name,
    lower(email) as email,
    phone,
    timezone,
    assigned_user_id,
    dnd as is_dnd,
    tags,
    date_added as added_at,
    source_updated_at as updated_at,
    deleted_at is not null as is_deleted,
    landed_at
from {{ source('raw', 'ghl_contacts') }}

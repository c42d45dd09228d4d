select
    location_id,
    message_id,
    conversation_id,
    contact_id,
    direction,
    coalesce(message_type, 'unknown') as channel,  -- the parser already maps TYPE_SMS to SMS
    status,
    date_added as sent_at,
    source_updated_at as updated_at,
    deleted_at is not null as is_deleted,
    landed_at
from {{ source('raw', 'ghl_messages') }}

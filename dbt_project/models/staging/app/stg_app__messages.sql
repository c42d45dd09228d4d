select
    id as app_message_id,
    location_id,
    client_id,
    trainer_id,
    direction,
    channel,
    status,
    generator,
    purpose,
    draft_body,
    approved_body,
    approved_at,
    decision,
    decided_at,
    created_at,
    sent_at
from {{ source('app', 'messages') }}

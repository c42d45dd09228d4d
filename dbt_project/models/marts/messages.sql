{{
    config(
        materialized='incremental',
        unique_key=['location_id', 'message_id'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['location_id', 'message_id'], 'unique': True},
            {'columns': ['landed_at']},
        ],
    )
}}
-- One row per GHL conversation message, in the studio's local time. Incremental on when
-- a row last landed, so a late status update (delivered, failed) replaces the old row.

with messages as (
    select * from {{ ref('stg_ghl__messages') }}
    {% if is_incremental() %}
    where landed_at > {{ watermark('landed_at') }}
    {% endif %}
)

select
    messages.location_id,
    messages.message_id,
    messages.conversation_id,
    messages.contact_id,
    messages.direction,
    messages.channel,
    messages.status,
    messages.is_deleted,
    messages.sent_at,
    (messages.sent_at at time zone coalesce(locations.timezone, 'UTC'))::date as local_date,
    date_trunc('week', messages.sent_at at time zone coalesce(locations.timezone, 'UTC'))::date
        as local_week,
    messages.landed_at
from messages
left join {{ ref('stg_app__locations') }} as locations using (location_id)

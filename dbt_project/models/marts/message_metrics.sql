-- Per studio and local week: what the AI inbox did with drafts (approved as written,
-- edited before approval, rejected) and how clients answered in GHL.

with drafts as (
    select
        drafts.location_id,
        date_trunc('week', drafts.created_at at time zone coalesce(locations.timezone, 'UTC'))::date
            as local_week,
        count(*) as drafts,
        count(*) filter (where drafts.approved_at is not null) as approved,
        count(*) filter (
            where drafts.approved_at is not null
            and drafts.approved_body is distinct from drafts.draft_body
        ) as edited,
        count(*) filter (where drafts.status = 'rejected') as rejected,
        count(*) filter (where drafts.sent_at is not null) as sent
    from {{ ref('stg_app__messages') }} as drafts
    left join {{ ref('stg_app__locations') }} as locations using (location_id)
    where drafts.direction = 'outbound' and drafts.generator is not null
    group by 1, 2
),

conversations as (
    select
        location_id,
        local_week,
        count(*) filter (where direction = 'outbound') as outbound_messages,
        count(*) filter (where direction = 'inbound') as replies,
        count(distinct contact_id) filter (where direction = 'inbound') as replying_contacts
    from {{ ref('messages') }}
    where not is_deleted
    group by 1, 2
)

select
    coalesce(drafts.location_id, conversations.location_id) as location_id,
    coalesce(drafts.local_week, conversations.local_week) as local_week,
    coalesce(drafts.drafts, 0) as drafts,
    coalesce(drafts.approved, 0) as drafts_approved,
    coalesce(drafts.edited, 0) as drafts_edited,
    coalesce(drafts.rejected, 0) as drafts_rejected,
    coalesce(drafts.sent, 0) as drafts_sent,
    round(drafts.approved::numeric / nullif(drafts.approved + drafts.rejected, 0), 4)
        as approval_rate,
    coalesce(conversations.outbound_messages, 0) as outbound_messages,
    coalesce(conversations.replies, 0) as replies,
    coalesce(conversations.replying_contacts, 0) as replying_contacts
from drafts
full outer join conversations
    on drafts.location_id = conversations.location_id
    and drafts.local_week = conversations.local_week

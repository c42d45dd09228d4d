-- Per studio, local week, trainer and purpose: what became of the drafts the drafter made
-- that week (outbound app.messages with a generator; a trainer's own messages are not
-- drafts), stage by stage. Each draft counts in the week it was created, so the stages
-- nest: drafted >= decided >= approved, and sent and replied are drafts of that week too.
--
-- decided            = approved_unedited + approved_edited + rejected (app.messages.decision)
-- sent               = sent_at is set
-- replied            = sent, and the same client wrote to the studio (an inbound GHL message
--                      from the client's contact) after the send and within 7 days of it
-- acceptance_rate    = (approved_unedited + approved_edited) / decided; null with nothing decided
-- reply_rate         = replied / sent; null with nothing sent
--
-- trainer_id is the draft's trainer (null: unassigned); trainer_user_id is that trainer's
-- GHL user, which the trainer tenant scope reads.

with drafts as (
    select
        drafts.location_id,
        drafts.app_message_id,
        drafts.trainer_id,
        drafts.purpose,
        drafts.decision,
        drafts.sent_at,
        clients.contact_id,
        date_trunc(
            'week', drafts.created_at at time zone coalesce(locations.timezone, 'UTC')
        )::date as local_week
    from {{ ref('stg_app__messages') }} as drafts
    left join {{ ref('stg_app__clients') }} as clients
        on drafts.location_id = clients.location_id
        and drafts.client_id = clients.client_id
    left join {{ ref('stg_app__locations') }} as locations
        on drafts.location_id = locations.location_id
    where drafts.direction = 'outbound' and drafts.generator is not null
),

inbound as (
    select location_id, contact_id, sent_at
    from {{ ref('messages') }}
    where direction = 'inbound' and not is_deleted
),

followed as (
    select
        drafts.*,
        drafts.sent_at is not null and exists (
            select
            from inbound
            where inbound.location_id = drafts.location_id
                and inbound.contact_id = drafts.contact_id
                and inbound.sent_at > drafts.sent_at
                and inbound.sent_at <= drafts.sent_at + interval '7 days'
        ) as was_replied
    from drafts
),

counted as (
    select
        location_id,
        local_week,
        trainer_id,
        purpose,
        count(*)::integer as drafted,
        count(*) filter (where decision is not null)::integer as decided,
        count(*) filter (where decision = 'approved_unedited')::integer as approved_unedited,
        count(*) filter (where decision = 'approved_edited')::integer as approved_edited,
        count(*) filter (where decision = 'rejected')::integer as rejected,
        count(*) filter (where sent_at is not null)::integer as sent,
        count(*) filter (where was_replied)::integer as replied
    from followed
    group by location_id, local_week, trainer_id, purpose
)

select
    counted.location_id,
    counted.local_week,
    (counted.local_week + 6) as local_week_end,
    counted.trainer_id,
    trainers.trainer_user_id,
    trainers.trainer_name,
    counted.purpose,
    counted.drafted,
    counted.decided,
    counted.approved_unedited,
    counted.approved_edited,
    counted.approved_unedited + counted.approved_edited as approved,
    counted.rejected,
    counted.sent,
    counted.replied,
    round(
        (counted.approved_unedited + counted.approved_edited)::numeric
        / nullif(counted.decided, 0),
        4
    ) as acceptance_rate,
    round(counted.replied::numeric / nullif(counted.sent, 0), 4) as reply_rate
from counted
left join {{ ref('stg_app__trainers') }} as trainers
    on counted.location_id = trainers.location_id
    and counted.trainer_id = trainers.trainer_id

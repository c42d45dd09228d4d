"""Event drafts end to end: signed GHL webhooks through the real receiver, the real ingest
job (which drafts in the same run), real Postgres. Confirmations, check-ins, reschedule
offers and replies appear as `pending_approval`; stale ones are withdrawn; escalations go
to the owner; opted-out clients get nothing; a draft that keeps failing the rules waits
as `needs_manual`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.fake_openai import fake_openai
from tests.job_harness import ingest
from tests.receiver_harness import Signer, post
from trainu_dagster import accounts
from trainu_dagster.db.server import Database
from trainu_dagster.ingest.clients import ensure_clients
from trainu_dagster.messaging import outbox
from trainu_dagster.messaging.drafting import OpenAIDrafter, TemplateDrafter
from trainu_dagster.messaging.drafts import make_drafts, redraft
from trainu_dagster.messaging.drafts_rules import DraftPlan, session_when

LOCATION = "loc-drafts"
TRAINER_GHL_ID = "user-jordan"
NY = "America/New_York"


@pytest.fixture(scope="module", autouse=True)
def studio(database: Database) -> None:
    with database.connect() as conn:
        conn.execute("INSERT INTO app.locations (location_id, name, timezone) "
                     "VALUES (%s, 'Iron Oak Studio', %s)", (LOCATION, NY))  # fmt: skip
        conn.execute("INSERT INTO app.trainers (location_id, ghl_user_id, name) "
                     "VALUES (%s, %s, 'Jordan Lee')", (LOCATION, TRAINER_GHL_ID))  # fmt: skip
        conn.commit()


def deliver(url: str, signer: Signer, payload: dict[str, Any]) -> None:
    """One marketplace webhook, signed as GHL signs it, through the real receiver."""
    stamped = payload | {
        "locationId": LOCATION,
        "webhookId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    body = orjson.dumps(stamped)
    response = post(url, body, signer.headers(body, "ed25519"))
    assert response.status_code == 200, response.text


def contact(contact_id: str, first: str, **fields: Any) -> dict[str, Any]:
    return {"type": "ContactCreate", "id": contact_id, "firstName": first, "lastName": "Rivera",
            "phone": f"+1718555{abs(hash(contact_id)) % 10_000:04d}", "timezone": NY,
            "assignedTo": TRAINER_GHL_ID, "dnd": False,
            "dateAdded": datetime.now(UTC).isoformat()} | fields  # fmt: skip


def appointment(
    appointment_id: str, contact_id: str, start: datetime, status: str = "confirmed",
    kind: str = "AppointmentCreate",
) -> dict[str, Any]:  # fmt: skip
    return {
        "type": kind,
        "appointment": {
            "id": appointment_id,
            "calendarId": "cal-jordan",
            "contactId": contact_id,
            "appointmentStatus": status,
            "assignedUserId": TRAINER_GHL_ID,
            "title": "PT session",
            "startTime": start.isoformat(),
            "endTime": (start + timedelta(hours=1)).isoformat(),
            "dateUpdated": datetime.now(UTC).isoformat(),
        },  # fmt: skip
    }


def inbound(contact_id: str, body: str) -> dict[str, Any]:
    return {"type": "InboundMessage", "contactId": contact_id, "body": body,
            "messageId": f"msg-{uuid.uuid4().hex[:10]}", "conversationId": f"conv-{contact_id}",
            "messageType": "SMS", "direction": "inbound", "contentType": "text/plain",
            "dateAdded": datetime.now(UTC).isoformat()}  # fmt: skip


def drafts(database: Database, contact_id: str) -> list[dict[str, Any]]:
    with database.connect() as conn:
        cur = conn.execute(
            """SELECT m.id, m.purpose, m.status, m.body, m.channel, m.suppressed_reason,
                      m.escalation_reason, m.trigger, m.safety, m.correlation_id, m.generator
               FROM app.messages m JOIN app.clients c ON c.id = m.client_id
               WHERE c.ghl_contact_id = %s AND m.direction = 'outbound'
               ORDER BY m.created_at""",
            (contact_id,),
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def start_in(delta: timedelta) -> datetime:
    return (datetime.now(UTC) + delta).replace(second=0, microsecond=0)


def test_a_booking_becomes_a_confirmation_in_the_same_run_and_a_cancellation_withdraws_it(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    start = start_in(timedelta(days=3))
    deliver(receiver_url, signer, contact("c-maya", "Maya"))
    deliver(receiver_url, signer, appointment("ap-maya", "c-maya", start))
    ingest(database)

    [draft] = drafts(database, "c-maya")
    assert (draft["purpose"], draft["status"], draft["channel"]) == (
        "confirmation",
        "pending_approval",
        "SMS",
    )
    assert draft["body"].startswith("Hi Maya, you're booked with Jordan Lee for ")
    assert session_when(start, ZoneInfo(NY)) in draft["body"]  # in the client's own time
    assert draft["safety"]["ok"] is True and draft["safety"]["failed"] == []
    with database.connect() as conn:
        webhook_correlation = conn.execute(
            "SELECT correlation_id FROM raw.webhook_events WHERE event_type = 'AppointmentCreate' "
            "AND payload->'appointment'->>'id' = 'ap-maya'"
        ).fetchone()[0]
        assert draft["correlation_id"] == webhook_correlation  # traced back to the webhook
        step, payload, correlation = conn.execute(
            "SELECT event_type, payload, correlation_id FROM app.agent_events "
            "WHERE message_id = %s",
            (draft["id"],),
        ).fetchone()
        events = conn.execute(
            "SELECT event_type FROM app.events WHERE entity_id = %s", (str(draft["id"]),)
        ).fetchall()
    assert (step, correlation) == ("draft", webhook_correlation)
    assert payload["generator"] == "template" and payload["template"] == "default:confirmation"
    assert "Maya" not in payload["output"] and "[client]" in payload["output"]  # redacted
    assert events == [("draft_created",)]

    # The same booking seen again (a GHL retry, an update of the notes): nothing new.
    deliver(receiver_url, signer, appointment("ap-maya", "c-maya", start, kind="AppointmentUpdate"))
    ingest(database)
    assert len(drafts(database, "c-maya")) == 1

    cancelled = appointment("ap-maya", "c-maya", start, "cancelled", kind="AppointmentUpdate")
    deliver(receiver_url, signer, cancelled)
    ingest(database)
    [withdrawn] = drafts(database, "c-maya")  # cancelled days ahead: no reschedule offer
    assert (withdrawn["status"], withdrawn["suppressed_reason"]) == (
        "suppressed",
        "booking cancelled",
    )


def test_each_of_a_clients_bookings_is_confirmed_and_withdrawn_on_its_own(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    monday, thursday = start_in(timedelta(days=2)), start_in(timedelta(days=5))
    deliver(receiver_url, signer, contact("c-ines", "Ines"))
    deliver(receiver_url, signer, appointment("ap-ines-1", "c-ines", monday))
    deliver(receiver_url, signer, appointment("ap-ines-2", "c-ines", thursday))
    ingest(database)

    made = drafts(database, "c-ines")
    assert sorted((d["purpose"], d["status"], d["trigger"]["appointment_id"]) for d in made) == [
        ("confirmation", "pending_approval", "ap-ines-1"),
        ("confirmation", "pending_approval", "ap-ines-2"),
    ]
    for draft in made:  # each names its own session
        when = monday if draft["trigger"]["appointment_id"] == "ap-ines-1" else thursday
        assert session_when(when, ZoneInfo(NY)) in draft["body"]

    cancelled = appointment("ap-ines-2", "c-ines", thursday, "cancelled", kind="AppointmentUpdate")
    deliver(receiver_url, signer, cancelled)
    ingest(database)
    assert sorted((d["trigger"]["appointment_id"], d["status"])
                  for d in drafts(database, "c-ines")) == [
        ("ap-ines-1", "pending_approval"), ("ap-ines-2", "suppressed"),
    ]  # fmt: skip


def test_a_late_cancellation_gets_a_reschedule_offer_and_a_no_show_a_check_in(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-leo", "Leo"))
    soon = start_in(timedelta(hours=3))
    deliver(receiver_url, signer, appointment("ap-leo", "c-leo", soon))
    cancelled = appointment("ap-leo", "c-leo", soon, "cancelled", kind="AppointmentUpdate")
    deliver(receiver_url, signer, cancelled)
    deliver(receiver_url, signer, contact("c-ana", "Ana"))
    missed = start_in(-timedelta(hours=2))
    deliver(receiver_url, signer, appointment("ap-ana", "c-ana", missed, "noshow"))
    ingest(database)

    # booked and cancelled within one batch: nothing to confirm, an offer to rebook
    [offer] = drafts(database, "c-leo")
    assert offer["purpose"] == "reschedule_offer"
    assert offer["status"] == "pending_approval" and offer["body"].startswith("Hi Leo, sorry you")
    [check_in] = drafts(database, "c-ana")
    assert (check_in["purpose"], check_in["status"]) == ("no_show_checkin", "pending_approval")

    # Ana books again: the check-in is moot, a confirmation replaces it.
    deliver(receiver_url, signer, appointment("ap-ana-2", "c-ana", start_in(timedelta(days=2))))
    ingest(database)
    after = {d["purpose"]: d for d in drafts(database, "c-ana")}
    assert after["no_show_checkin"]["status"] == "suppressed"
    assert after["no_show_checkin"]["suppressed_reason"] == "client rebooked"
    assert after["confirmation"]["status"] == "pending_approval"


def test_a_question_gets_a_reply_draft_and_ordinary_replies_get_none(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-noor", "Noor"))
    deliver(receiver_url, signer, inbound("c-noor", "Sounds good, see you then!"))
    deliver(receiver_url, signer, inbound("c-noor", "I can't stop thinking about that workout"))
    ingest(database)
    assert drafts(database, "c-noor") == []

    deliver(receiver_url, signer, inbound("c-noor", "Can I bring my sister to Thursday's session?"))
    ingest(database)
    [reply] = drafts(database, "c-noor")
    assert (reply["purpose"], reply["status"]) == ("reply", "pending_approval")
    assert reply["trigger"]["intent"] == "question"


def test_a_draft_regenerated_is_written_again_from_its_stored_facts_and_the_thread(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-oli", "Oli"))
    deliver(receiver_url, signer, inbound("c-oli", "Is there parking near the studio?"))
    ingest(database)
    [reply] = drafts(database, "c-oli")
    with database.connect() as conn:
        facts = conn.execute(
            "SELECT draft_facts FROM app.messages WHERE id = %s", (reply["id"],)
        ).fetchone()[0]
    assert facts == {"question": "Is there parking near the studio?"}
    with fake_openai("schema") as (url, fake), database.connect() as conn:
        model = OpenAIDrafter(api_key="sk-test", base_url=url, model="gpt-4o-mini")
        redone = redraft(conn, reply["id"], "warmer", model, now=datetime.now(UTC))
    assert redone is not None and redone.status == "pending_approval"
    [request] = fake.requests
    data = json.loads(request["messages"][1]["content"].split("\n", 1)[1])
    assert data["facts"]["question"] == "Is there parking near the studio?"
    assert data["thread"][-1]["text"] == "Is there parking near the studio?"
    assert data["previous_draft"] == reply["body"]
    [again] = drafts(database, "c-oli")
    assert again["body"] == redone.result.text != reply["body"]
    assert again["generator"] == "openai"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I think I pulled my hamstring yesterday, should I still come in?", "injury"),
        ("I was charged twice this month, I want my money back", "billing_dispute"),
        ("honestly I don't want to be alive anymore", "self_harm"),
    ],
)
def test_a_message_a_person_must_answer_is_escalated_not_drafted(
    database: Database, receiver_url: str, signer: Signer, text: str, category: str
) -> None:
    contact_id = f"c-esc-{category}"
    deliver(receiver_url, signer, contact(contact_id, "Kai"))
    deliver(receiver_url, signer, inbound(contact_id, text))
    ingest(database)
    [item] = drafts(database, contact_id)
    assert (item["status"], item["escalation_reason"], item["body"]) == (
        "escalated",
        category,
        text,
    )
    assert ("988" in item["trigger"].get("guidance", "")) == (category == "self_harm")
    with database.connect() as conn:
        [(properties,)] = conn.execute(
            "SELECT properties FROM app.events "
            "WHERE event_type = 'draft_escalated' AND entity_id = %s",
            (str(item["id"]),),
        ).fetchall()
    assert properties == {"category": category}


def test_stop_opts_the_client_out_withdraws_their_drafts_and_blocks_new_ones(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-zoe", "Zoe"))
    deliver(receiver_url, signer, appointment("ap-zoe", "c-zoe", start_in(timedelta(days=4))))
    ingest(database)
    assert [d["status"] for d in drafts(database, "c-zoe")] == ["pending_approval"]

    deliver(receiver_url, signer, inbound("c-zoe", "STOP"))
    ingest(database)
    [draft] = drafts(database, "c-zoe")
    assert (draft["status"], draft["suppressed_reason"]) == ("suppressed", "client opted out")
    with database.connect() as conn:
        opted_out, reason = conn.execute(
            "SELECT opted_out_at, opt_out_reason FROM app.clients WHERE ghl_contact_id = 'c-zoe'"
        ).fetchone()
    assert opted_out is not None and reason == "STOP reply"

    deliver(receiver_url, signer, appointment("ap-zoe-2", "c-zoe", start_in(timedelta(days=5))))
    deliver(receiver_url, signer, inbound("c-zoe", "What time is my next session?"))
    ingest(database)
    assert len(drafts(database, "c-zoe")) == 1  # nothing new for an opted-out client


def test_an_opt_out_in_the_clients_own_words_offers_one_confirmation_to_approve(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    """GHL acts on its STOP keywords (and confirms them itself); an opt-out TrainU reads in
    the client's own words gets the one confirmation it allows, as a draft to approve."""
    deliver(receiver_url, signer, contact("c-ash", "Ash"))
    deliver(receiver_url, signer, appointment("ap-ash", "c-ash", start_in(timedelta(days=4))))
    ingest(database)
    deliver(receiver_url, signer, inbound("c-ash", "Please stop texting me, thanks"))
    ingest(database)
    statuses = {(d["purpose"], d["status"]) for d in drafts(database, "c-ash")}
    assert statuses == {("confirmation", "suppressed"),
                        ("opt_out_confirmation", "pending_approval")}  # fmt: skip
    [confirmation] = [d for d in drafts(database, "c-ash")
                      if d["purpose"] == "opt_out_confirmation"]  # fmt: skip
    assert "unsubscribed" in confirmation["body"] and confirmation["safety"]["ok"]
    with database.connect() as conn:
        reason = conn.execute(
            "SELECT opt_out_reason FROM app.clients WHERE ghl_contact_id = 'c-ash'"
        ).fetchone()
    assert reason == ("STOP reply",)


def test_a_draft_that_keeps_failing_the_rules_waits_as_needs_manual(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-ivy", "Ivy"))
    ingest(database)
    with database.connect() as conn:  # a contact becomes a client when TrainU first acts for it
        ensure_clients(conn, LOCATION, ["c-ivy"])
        client_id = conn.execute(
            "SELECT id FROM app.clients WHERE ghl_contact_id = 'c-ivy'"
        ).fetchone()[0]
        conn.commit()
    plan = DraftPlan(purpose="re_engagement", location_id=LOCATION, client_id=client_id,
                     key=f"re_engagement:test:{client_id}", facts={"days_since_visit": "30"},
                     trigger={"event": "risk_high"})  # fmt: skip
    with fake_openai("promising") as (url, fake), database.connect() as conn:
        model = OpenAIDrafter(api_key="sk-test", base_url=url, model="gpt-4o-mini")
        outcome = make_drafts(conn, [plan], model, now=datetime.now(UTC))
        conn.commit()
    assert len(outcome.needs_manual) == 1 and outcome.created == []
    # regenerated once, told which rule the first draft broke
    assert len(fake.requests) == 2
    assert "promise" in fake.requests[1]["messages"][0]["content"]
    [draft] = drafts(database, "c-ivy")
    assert (draft["status"], draft["generator"]) == ("needs_manual", "openai")
    assert "promise" in draft["safety"]["failed"] and draft["safety"]["ok"] is False

    # the same trigger again: already drafted, no second model call
    with fake_openai("schema") as (url, fake), database.connect() as conn:
        model = OpenAIDrafter(api_key="sk-test", base_url=url, model="gpt-4o-mini")
        again = make_drafts(conn, [plan], model, now=datetime.now(UTC))
    assert again.skipped == 1 and fake.requests == []


def test_a_link_in_the_owners_template_is_kept_only_once_the_owner_allows_its_domain(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-max", "Max"))
    ingest(database)
    template = (
        "Hi {{ first_name }}, book your next session at https://book.ironoak.fit/max "
        "Reply STOP to opt out."
    )
    with database.connect() as conn:
        ensure_clients(conn, LOCATION, ["c-max"])
        client_id = conn.execute(
            "SELECT id FROM app.clients WHERE ghl_contact_id = 'c-max'"
        ).fetchone()[0]
        conn.execute(
            "UPDATE app.locations SET draft_voice = %s WHERE location_id = %s",
            (orjson.dumps({"templates": {"re_engagement": template}}).decode(), LOCATION),
        )
        conn.commit()

    def draft_once(key: str) -> str:
        plan = DraftPlan(purpose="re_engagement", location_id=LOCATION, client_id=client_id,
                         key=key, facts={"days_since_visit": "30"},
                         trigger={"event": "risk_high"})  # fmt: skip
        with database.connect() as conn:
            outcome = make_drafts(conn, [plan], TemplateDrafter(), now=datetime.now(UTC))
            [message_id] = outcome.created
            body = conn.execute(
                "SELECT body FROM app.messages WHERE id = %s", (message_id,)
            ).fetchone()[0]
            conn.execute(
                "UPDATE app.messages SET status = 'rejected', rejected_reason = 'test' "
                "WHERE id = %s",
                (message_id,),
            )
            conn.commit()
        return body

    assert "ironoak.fit" not in draft_once("link:before")  # the default replaced it
    with database.connect() as conn:
        conn.execute(
            "UPDATE app.locations SET allowed_link_domains = '{ironoak.fit}' "
            "WHERE location_id = %s",
            (LOCATION,),
        )
    assert draft_once("link:after") == template.replace("{{ first_name }}", "Max")


# --- the thread: replies and delivery reports (messaging.inbound) ------------------------


def thread_rows(database: Database, contact_id: str) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(
            """SELECT m.direction, m.status, m.body, m.trigger->>'intent', m.ghl_conversation_id
               FROM app.messages m JOIN app.clients c ON c.id = m.client_id
               WHERE c.ghl_contact_id = %s AND m.status IN ('received', 'sent', 'delivered',
                                                            'failed')
               ORDER BY m.created_at""",
            (contact_id,),
        ).fetchall()


def sent_message(database: Database, contact_id: str, ghl_id: str | None, status: str) -> str:
    """An outbound message as the outbox leaves it: approved by a person, then sent/queued."""
    with database.connect() as conn:
        ensure_clients(conn, LOCATION, [contact_id])
        owner = conn.execute(
            "SELECT id FROM app.users WHERE email = 'owner@ironoak.example'"
        ).fetchone() or (accounts.create_user(conn, location_id=LOCATION,
                         email="owner@ironoak.example", password="a long enough password",
                         role="owner", display_name="Owner").id,)  # fmt: skip
        return conn.execute(
            """INSERT INTO app.messages (location_id, client_id, direction, channel, status,
                   body, approved_body, approved_by, approved_at, ghl_message_id, sent_at,
                   claimed_at, claimed_by)
               SELECT location_id, id, 'outbound', 'SMS', %s, 'See you!', 'See you!', %s,
                      now(), %s, CASE WHEN %s = 'sent' THEN now() END,
                      CASE WHEN %s = 'queued' THEN now() END,
                      CASE WHEN %s = 'queued' THEN 'run-1' END
               FROM app.clients WHERE ghl_contact_id = %s RETURNING id""",
            (status, owner[0], ghl_id, status, status, status, contact_id),
        ).fetchone()[0]


def outbound_status(contact_id: str, message_id: str, status: str) -> dict[str, Any]:
    return {"type": "OutboundMessage", "contactId": contact_id, "body": "See you!",
            "messageId": message_id, "conversationId": f"conv-{contact_id}",
            "messageType": "SMS", "direction": "outbound", "status": status,
            "dateAdded": datetime.now(UTC).isoformat(),
            "dateUpdated": datetime.now(UTC).isoformat()}  # fmt: skip


def test_a_clients_reply_lands_on_their_thread_once_with_what_it_asks(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-rae", "Rae"))
    reply = inbound("c-rae", "Yes, confirmed for Thursday!")
    deliver(receiver_url, signer, reply)
    deliver(receiver_url, signer, reply)  # GHL delivers twice: one row
    deliver(receiver_url, signer, inbound("c-rae", "Can we move it to Friday?"))
    ingest(database)
    assert thread_rows(database, "c-rae") == [
        ("inbound", "received", "Yes, confirmed for Thursday!", "confirm", "conv-c-rae"),
        ("inbound", "received", "Can we move it to Friday?", "reschedule", "conv-c-rae"),
    ]


def test_stop_suppresses_approved_messages_waiting_to_go(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-sol", "Sol"))
    ingest(database)
    waiting = sent_message(database, "c-sol", None, "approved")
    deliver(receiver_url, signer, inbound("c-sol", "STOP"))
    ingest(database)
    with database.connect() as conn:
        status, reason = conn.execute(
            "SELECT status, suppressed_reason FROM app.messages WHERE id = %s", (waiting,)
        ).fetchone()
    assert (status, reason) == ("suppressed", "client opted out")
    assert thread_rows(database, "c-sol")[-1][3] == "opt_out"


def test_delivery_reports_move_sent_to_delivered_or_failed_in_either_order(
    database: Database, receiver_url: str, signer: Signer
) -> None:
    deliver(receiver_url, signer, contact("c-tam", "Tam"))
    ingest(database)
    delivered = sent_message(database, "c-tam", "ghl-m1", "sent")
    failed = sent_message(database, "c-tam", "ghl-m2", "sent")
    deliver(receiver_url, signer, outbound_status("c-tam", "ghl-m1", "delivered"))
    deliver(receiver_url, signer, outbound_status("c-tam", "ghl-m2", "undelivered"))
    # the report of a message whose send is not recorded yet (the send run's commit is late)
    deliver(receiver_url, signer, outbound_status("c-tam", "ghl-m3", "delivered"))
    ingest(database)
    early = sent_message(database, "c-tam", None, "queued")
    with database.connect() as conn:
        row = conn.execute(
            """SELECT m.id, m.location_id, m.client_id, 'c-tam', m.channel, m.subject,
                      m.approved_body, m.correlation_id, m.purpose, m.claimed_at, 1
               FROM app.messages m WHERE m.id = %s""",
            (early,),
        ).fetchone()
        outbox._mark_sent(conn, outbox.Claim(*row), "ghl-m3", "conv-c-tam", datetime.now(UTC),
                          "run-1")  # fmt: skip
        statuses = dict(conn.execute(
            "SELECT id, status FROM app.messages WHERE id = ANY(%s)",
            ([delivered, failed, early],),
        ).fetchall())  # fmt: skip
        reason = conn.execute(
            "SELECT failed_reason FROM app.messages WHERE id = %s", (failed,)
        ).fetchone()[0]
    assert [statuses[m] for m in (delivered, failed, early)] == ["delivered", "failed", "delivered"]
    assert reason == "GHL: undelivered"

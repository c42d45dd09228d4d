"""The AI Inbox: what a trainer is asked to decide, and what each decision writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest
from psycopg.types.json import Jsonb
from streamlit.testing.v1 import AppTest

from tests.app_harness import app_pointed_at, signed_in
from tests.fake_openai import fake_openai
from tests.rls_world import World, add_draft, build_world, close_open_drafts
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.inbox import decisions, escalations, queue
from trainu_dagster.inbox.decisions import Loaded
from trainu_dagster.messaging.drafting import OpenAIDrafter, TemplateDrafter
from trainu_dagster.settings import PROJECT_ROOT

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(database: Database) -> Iterator[World]:
    world = build_world(database)
    with app_pointed_at(database):
        yield world


@pytest.fixture
def fresh(world: World) -> World:
    close_open_drafts(world)
    return world


@contextmanager
def as_user(world: World, who: str) -> Iterator[psycopg.Connection]:
    with world.database.connect(role=APP_ROLE) as conn, accounts.as_user(conn, world.token(who)):
        yield conn


def pending(world: World, who: str, **kwargs) -> list[queue.PendingDraft]:
    with as_user(world, who) as conn:
        return queue.pending_drafts(conn, now=NOW, **kwargs)


def decide(world: World, who: str, action, *args) -> decisions.Outcome:
    with as_user(world, who) as conn:
        return action(conn, world.users[who], *args, now=NOW)


def loaded(world: World, message_id: UUID) -> Loaded:
    with world.database.connect() as conn:
        updated_at = conn.execute(
            "SELECT updated_at FROM app.messages WHERE id = %s", (message_id,)
        ).fetchone()[0]
    return Loaded(message_id, updated_at)


def message(world: World, message_id: UUID) -> dict:
    with world.database.connect() as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute("SELECT * FROM app.messages WHERE id = %s", (message_id,)).fetchone()


def logged(world: World, message_id: UUID) -> tuple[list, list]:
    with world.database.connect() as conn:
        events = conn.execute(
            """SELECT event_type, correlation_id, properties FROM app.events
               WHERE entity_type = 'message' AND entity_id = %s ORDER BY id""",
            (str(message_id),),
        ).fetchall()
        audit = conn.execute(
            "SELECT action, details FROM app.audit_log WHERE entity_id = %s ORDER BY id",
            (str(message_id),),
        ).fetchall()
    return events, audit


# --- the queue ------------------------------------------------------------------------------


def test_a_trainer_sees_only_own_clients_drafts_and_the_owner_can_filter(fresh: World) -> None:
    mine = add_draft(fresh, "a1", "confirmation")
    theirs = add_draft(fresh, "b1", "confirmation")
    other_studio = add_draft(fresh, "c1", "confirmation")
    assert {d.id for d in pending(fresh, "trainer-A")} == {mine}
    assert {d.id for d in pending(fresh, "trainer-B")} == {theirs}
    assert {d.id for d in pending(fresh, "owner-L1")} == {mine, theirs}
    trainer_b = pending(fresh, "trainer-B")[0]
    with fresh.database.connect() as conn:
        b_id = conn.execute("SELECT trainer_id FROM app.messages WHERE id = %s", (theirs,))
        b_id = b_id.fetchone()[0]
    assert [d.id for d in pending(fresh, "owner-L1", trainer_id=b_id)] == [theirs]
    assert trainer_b.client_name == "Client b1"
    assert pending(fresh, "client-a1") == []
    assert {d.id for d in pending(fresh, "owner-L2")} == {other_studio}


def test_a_reminder_due_tonight_comes_before_the_riskiest_re_engagement(fresh: World) -> None:
    calm = add_draft(fresh, "a1", "re_engagement", "We miss you", risk=0.55)
    risky = add_draft(fresh, "a2", "re_engagement", "Come back soon", risk=0.91)
    later = add_draft(fresh, "a2", "reminder", scheduled_for=NOW + timedelta(hours=20))
    tonight = add_draft(fresh, "a1", "reminder", scheduled_for=NOW + timedelta(hours=6))
    drafts = pending(fresh, "trainer-A")
    assert [d.id for d in drafts] == [tonight, later, risky, calm]
    assert drafts[2].risk_band == "high" and drafts[2].risk_reason == "no session in 20 days"


def test_the_count_covers_every_waiting_draft_beyond_the_page(fresh: World) -> None:
    for purpose in ("milestone", "reminder", "confirmation"):
        add_draft(fresh, "a1", purpose)
    snoozed = add_draft(fresh, "a2", "milestone")
    decide(fresh, "trainer-A", decisions.snooze, loaded(fresh, snoozed), NOW + timedelta(hours=1))
    assert len(pending(fresh, "trainer-A", limit=2)) == 2
    with as_user(fresh, "trainer-A") as conn:
        assert queue.pending_count(conn, now=NOW) == 3
    with as_user(fresh, "trainer-B") as conn:
        assert queue.pending_count(conn, now=NOW) == 0


def test_the_page_shows_the_first_drafts_and_more_on_request(fresh: World) -> None:
    purposes = ["confirmation", "reminder", "no_show_checkin", "reschedule_offer",
                "re_engagement", "milestone", "reply"]  # fmt: skip
    for client in ("a1", "a2"):
        for purpose in purposes:
            add_draft(fresh, client, purpose, f"{purpose} for {client}")
    app = on_inbox("trainer-A@example.com")
    page = inbox_page_size()
    assert len(app.text_area) == page
    assert app.caption[0].value == (
        f"14 drafts waiting, most urgent first. The first {page} are shown."
    )
    button_labels = [b.label for b in app.button]
    app.button[button_labels.index(f"Show {page} more")].click()
    app.run()
    assert len(app.text_area) == 14
    assert f"Show {page} more" not in [b.label for b in app.button]


def test_the_page_shows_when_each_draft_was_made_in_the_studios_time(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "confirmation")
    made = datetime(2026, 12, 3, 14, 44, tzinfo=UTC)  # 09:44 in New York
    with fresh.database.connect() as conn:
        conn.execute("UPDATE app.messages SET created_at = %s WHERE id = %s", (made, draft))
        conn.execute("UPDATE app.locations SET timezone = 'America/New_York' "
                     "WHERE location_id = 'L1'")  # fmt: skip
    try:
        app = on_inbox("trainer-A@example.com")
    finally:
        with fresh.database.connect() as conn:
            conn.execute("UPDATE app.locations SET timezone = 'Europe/London' "
                         "WHERE location_id = 'L1'")  # fmt: skip
    assert not app.exception
    assert "Booking confirmation · booking created · Thu 03 Dec 09:44 · SMS" in [
        c.value for c in app.caption
    ]


def inbox_page_size() -> int:
    page = (PROJECT_ROOT / "streamlit_app" / "views" / "inbox.py").read_text()
    return int(page.split("PAGE_SIZE = ", 1)[1].split()[0])


def test_a_snoozed_draft_leaves_the_inbox_until_its_time(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "milestone")
    later = NOW + timedelta(hours=4)
    result = decide(fresh, "trainer-A", decisions.snooze, loaded(fresh, draft), later)
    assert result.ok, result.detail
    assert pending(fresh, "trainer-A") == []
    with as_user(fresh, "trainer-A") as conn:
        back = queue.pending_drafts(conn, now=later + timedelta(minutes=1))
    assert [d.id for d in back] == [draft]
    refused = decide(fresh, "trainer-A", decisions.snooze, loaded(fresh, draft), NOW)
    assert not refused.ok and "future" in refused.detail


# --- decisions ------------------------------------------------------------------------------


def test_approving_as_drafted_records_the_exact_text_approver_and_correlation(
    fresh: World,
) -> None:
    draft = add_draft(fresh, "a1", "confirmation", "Booked: Tue 9:00. See you then!")
    result = decide(
        fresh, "trainer-A", decisions.approve, loaded(fresh, draft),
        "Booked: Tue 9:00. See you then!",
    )  # fmt: skip
    assert result.ok, result.detail
    row = message(fresh, draft)
    assert row["status"] == "approved"
    assert row["approved_body"] == row["body"] == "Booked: Tue 9:00. See you then!"
    assert row["approved_by"] == fresh.users["trainer-A"].id
    assert row["approved_at"] == NOW and row["decision"] == "approved_unedited"
    events, audit = logged(fresh, draft)
    assert [(e[0], e[1]) for e in events] == [("draft_approved", row["correlation_id"])]
    assert events[0][2]["decision"] == "approved_unedited"
    assert [a[0] for a in audit] == ["draft_approved"]
    assert audit[0][1]["correlation_id"] == str(row["correlation_id"])


def test_an_edited_approval_sends_the_edit_and_keeps_the_original(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "no_show_checkin", "We missed you today!")
    edit = "Missed you today, Sam. Want Thursday at 6 instead?"
    result = decide(fresh, "trainer-A", decisions.approve, loaded(fresh, draft), edit)
    assert result.ok and "edited" in result.detail
    row = message(fresh, draft)
    assert (row["body"], row["approved_body"], row["draft_body"]) == (
        edit, edit, "We missed you today!",
    )  # fmt: skip
    assert row["decision"] == "approved_edited"
    events, _ = logged(fresh, draft)
    assert events[0][2]["original"] == "We missed you today!"
    assert events[0][2]["final"] == edit


def test_a_draft_withdrawn_or_changed_since_the_page_loaded_is_not_approved(
    fresh: World,
) -> None:
    withdrawn = add_draft(fresh, "a1", "confirmation")
    changed = add_draft(fresh, "a2", "reply")
    seen_withdrawn, seen_changed = loaded(fresh, withdrawn), loaded(fresh, changed)
    with fresh.database.connect() as conn:
        conn.execute(
            """UPDATE app.messages SET status = 'suppressed', suppressed_reason = 'cancelled',
                   updated_at = now() WHERE id = %s""",
            (withdrawn,),
        )
        conn.execute(
            "UPDATE app.messages SET body = 'regenerated', updated_at = now() WHERE id = %s",
            (changed,),
        )
    first = decide(fresh, "trainer-A", decisions.approve, seen_withdrawn, "Hi!")
    second = decide(fresh, "trainer-A", decisions.approve, seen_changed, "Hi!")
    assert not first.ok and "withdrawn since the page loaded" in first.detail
    assert not second.ok and "changed since the page loaded" in second.detail
    assert message(fresh, withdrawn)["status"] == "suppressed"
    assert message(fresh, changed)["status"] == "pending_approval"
    assert message(fresh, changed)["approved_by"] is None
    assert logged(fresh, withdrawn) == ([], [])


def test_another_trainers_draft_cannot_be_decided(fresh: World) -> None:
    draft = add_draft(fresh, "b1", "confirmation")
    result = decide(fresh, "trainer-A", decisions.approve, loaded(fresh, draft), "Hi!")
    assert not result.ok and "not in your inbox" in result.detail
    assert message(fresh, draft)["status"] == "pending_approval"


def test_rejecting_needs_a_reason_and_keeps_it(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "re_engagement", "Come back!")
    blank = decide(fresh, "trainer-A", decisions.reject, loaded(fresh, draft), "  ")
    assert not blank.ok and message(fresh, draft)["status"] == "pending_approval"
    result = decide(fresh, "trainer-A", decisions.reject, loaded(fresh, draft), "too pushy")
    assert result.ok
    row = message(fresh, draft)
    assert (row["status"], row["rejected_reason"], row["decision"]) == (
        "rejected", "too pushy", "rejected",
    )  # fmt: skip
    assert logged(fresh, draft)[0][0][2]["reason"] == "too pushy"


def test_a_draft_that_failed_safety_is_approved_only_once_edited(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "reply", "Call 555-0100", status="needs_manual")
    same = decide(fresh, "trainer-A", decisions.approve, loaded(fresh, draft), "Call 555-0100")
    assert not same.ok and "edit it before approving" in same.detail
    fixed = decide(fresh, "trainer-A", decisions.approve, loaded(fresh, draft), "I'll call you.")
    assert fixed.ok and message(fresh, draft)["approved_body"] == "I'll call you."


def test_bulk_approval_reports_each_item_and_skips_the_stale_one(fresh: World) -> None:
    drafts = [add_draft(fresh, c, "confirmation", f"Booked, {c}!") for c in ("a1", "a2")]
    seen = [loaded(fresh, d) for d in drafts]
    with fresh.database.connect() as conn:
        conn.execute("UPDATE app.messages SET updated_at = now() WHERE id = %s", (drafts[0],))
    user = fresh.users["trainer-A"]
    with as_user(fresh, "trainer-A") as conn:
        texts = {seen[0]: "Booked, a1!", seen[1]: "Booked, a2!"}
        outcomes = decisions.bulk(
            conn, seen, lambda c, d: decisions.approve(c, user, d, texts[d], now=NOW)
        )
    assert [o.ok for o in outcomes] == [False, True]
    assert [message(fresh, d)["status"] for d in drafts] == ["pending_approval", "approved"]


# --- regenerating, and edits held to the safety rules ----------------------------------------

WHEN = {"session_when": "Tue 8 Dec at 9 am"}


def with_facts(world: World, message_id: UUID, facts: dict[str, str]) -> None:
    """As the drafter stores them: the facts the draft was written from."""
    with world.database.connect() as conn:
        conn.execute(
            "UPDATE app.messages SET draft_facts = %s WHERE id = %s", (Jsonb(facts), message_id)
        )


def agent_steps(world: World, message_id: UUID) -> list[tuple[str, dict]]:
    with world.database.connect() as conn:
        return conn.execute(
            "SELECT event_type, payload FROM app.agent_events WHERE message_id = %s ORDER BY id",
            (message_id,),
        ).fetchall()


def test_regenerating_shorter_rewrites_the_draft_from_its_facts(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "confirmation", "Hi Client, you're booked for Tue 8 Dec.")
    with_facts(fresh, draft, WHEN)
    seen = loaded(fresh, draft)
    result = decide(fresh, "trainer-A", decisions.regenerate, seen, " shorter ", TemplateDrafter())
    assert result.ok, result.detail
    row = message(fresh, draft)
    # the studio's trainer and the session time from the stored facts, in the short style
    assert (
        row["body"] == "Hi Client, booked: Tue 8 Dec at 9 am with Trainer A. Reply YES to confirm."
    )
    assert row["draft_body"] == row["body"] and row["status"] == "pending_approval"
    assert row["safety"]["ok"] is True and row["updated_at"] == NOW
    events, audit = logged(fresh, draft)
    assert [e[0] for e in events] == ["draft_regenerated"] == [a[0] for a in audit]
    assert events[0][1] == row["correlation_id"]
    assert events[0][2]["instruction"] == "shorter"
    assert events[0][2]["previous"] == "Hi Client, you're booked for Tue 8 Dec."
    assert events[0][2]["final"] == row["body"]
    [(step, payload)] = agent_steps(fresh, draft)
    assert (step, payload["instruction"], payload["generator"]) == (
        "regenerate",
        "shorter",
        "template",
    )
    # the page's old version is stale now: approving what it showed is refused
    stale = decide(fresh, "trainer-A", decisions.approve, seen, "Hi Client, you're booked.")
    assert not stale.ok and "changed since the page loaded" in stale.detail
    approved = decide(fresh, "trainer-A", decisions.approve, loaded(fresh, draft), row["body"])
    assert approved.ok and message(fresh, draft)["decision"] == "approved_unedited"


def test_free_text_needs_a_model_and_the_model_gets_the_instruction_and_the_draft(
    fresh: World,
) -> None:
    draft = add_draft(fresh, "a1", "confirmation", "Hi Client, you're booked for Tue 8 Dec.")
    with_facts(fresh, draft, WHEN)
    ask = "mention we can move it if needed"
    offline = decide(fresh, "trainer-A", decisions.regenerate, loaded(fresh, draft), ask,
                     TemplateDrafter())  # fmt: skip
    assert not offline.ok and "“shorter” or “warmer”" in offline.detail
    assert message(fresh, draft)["body"] == "Hi Client, you're booked for Tue 8 Dec."
    assert logged(fresh, draft) == ([], [])
    with fake_openai("schema") as (url, fake):
        model = OpenAIDrafter(api_key="sk-test", base_url=url, model="gpt-4o-mini")
        result = decide(fresh, "trainer-A", decisions.regenerate, loaded(fresh, draft), ask, model)
    assert result.ok, result.detail
    [request] = fake.requests
    system, data = request["messages"][0]["content"], request["messages"][1]["content"]
    assert ask in system and "Hi Client, you're booked for Tue 8 Dec." in data
    row = message(fresh, draft)
    assert (row["body"], row["generator"]) == ("Hi Client, see you Tue 8 Dec at 9 am!", "openai")


def test_regenerating_refuses_blank_or_stale_drafts_and_old_drafts_without_facts(
    fresh: World,
) -> None:
    draft = add_draft(fresh, "a1", "reminder")
    blank = decide(fresh, "trainer-A", decisions.regenerate, loaded(fresh, draft), "  ",
                   TemplateDrafter())  # fmt: skip
    assert not blank.ok and "Say how" in blank.detail
    no_facts = decide(fresh, "trainer-A", decisions.regenerate, loaded(fresh, draft), "warmer",
                      TemplateDrafter())  # fmt: skip
    assert not no_facts.ok and "edit it instead" in no_facts.detail
    with_facts(fresh, draft, WHEN)
    seen = loaded(fresh, draft)
    with fresh.database.connect() as conn:
        conn.execute("UPDATE app.messages SET updated_at = now() WHERE id = %s", (draft,))
    stale = decide(fresh, "trainer-A", decisions.regenerate, seen, "warmer", TemplateDrafter())
    assert not stale.ok and "changed since the page loaded" in stale.detail
    theirs = add_draft(fresh, "b1", "reminder")
    with_facts(fresh, theirs, WHEN)
    other = decide(fresh, "trainer-A", decisions.regenerate, loaded(fresh, theirs), "warmer",
                   TemplateDrafter())  # fmt: skip
    assert not other.ok and "not in your inbox" in other.detail
    assert (
        message(fresh, draft)["body"]
        == message(fresh, theirs)["body"]
        == ("Hi! Still on for tomorrow at 9?")
    )


def test_an_edit_is_held_to_the_same_safety_rules_as_a_draft(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "confirmation", "Booked for Tuesday at 9.")
    cases = {
        "Booked! Pay at https://evil.example/pay": "link",
        "Booked! Bring your friend Client a2 too.": "another client",
        "Booked! We guarantee you'll lose 10 kg or your money back.": "promise",
    }
    for edit in cases:
        refused = decide(fresh, "trainer-A", decisions.approve, loaded(fresh, draft), edit)
        assert not refused.ok and refused.detail.startswith("Not approved: "), edit
    row = message(fresh, draft)
    assert (row["status"], row["approved_body"], row["decision"]) == (
        "pending_approval",
        None,
        None,
    )
    assert logged(fresh, draft) == ([], [])
    fine = decide(fresh, "trainer-A", decisions.approve, loaded(fresh, draft), "Booked: Tue 9!")
    assert fine.ok and message(fresh, draft)["approved_body"] == "Booked: Tue 9!"


# --- the page -------------------------------------------------------------------------------


def on_inbox(email: str) -> AppTest:
    return signed_in(email, page="views/inbox.py")


def button(app: AppTest, prefix: str):
    [found] = [b for b in app.button if (b.key or "").startswith(prefix)]
    return found


def choose(app: AppTest, draft: UUID, action: str) -> None:
    """Pick Regenerate, Reject or Snooze on a draft's card (its controls then appear)."""
    [more] = [r for r in app.radio if (r.key or "").startswith(f"more-{draft}")]
    more.set_value(action)
    app.run()


def test_the_inbox_page_shows_own_drafts_inert_and_approves_an_edit(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "confirmation", "See you **Tuesday** <b>9</b>")
    with fresh.database.connect() as conn:
        conn.execute(
            "UPDATE app.clients SET name = %s WHERE id = %s",
            ("<script>alert(1)</script> [x](javascript:alert(1))", fresh.client_ids["a1"]),
        )
    add_draft(fresh, "b1", "confirmation", "Not for trainer A")
    app = on_inbox("trainer-A@example.com")
    assert not app.exception
    assert app.title[0].value == "AI Inbox"
    assert [a.value for a in app.text_area] == ["See you **Tuesday** <b>9</b>"]
    # GHL text is shown by inert elements only (the browser test checks the DOM).
    assert "<script>alert(1)</script> [x](javascript:alert(1))" in [t.value for t in app.text]
    assert not any("<script>" in m.value for m in app.markdown)
    [area] = app.text_area
    area.input("See you Tuesday at 9!")
    button(app, f"approve-{draft}").click()
    app.run()
    assert [s.value for s in app.success] == [
        "Approved as edited: it will be sent within the studio's sending rules."
    ]
    assert message(fresh, draft)["approved_body"] == "See you Tuesday at 9!"
    assert [i.value for i in app.info] == ["Nothing waiting for you: every draft has been decided."]


def test_the_page_refuses_a_draft_withdrawn_while_it_was_open(fresh: World) -> None:
    draft = add_draft(fresh, "a1", "confirmation")
    app = on_inbox("trainer-A@example.com")
    with fresh.database.connect() as conn:
        conn.execute(
            """UPDATE app.messages SET status = 'suppressed', suppressed_reason = 'cancelled',
                   updated_at = now() WHERE id = %s""",
            (draft,),
        )
    button(app, f"approve-{draft}").click()
    app.run()
    assert [w.value for w in app.warning] == [
        "Not done: this draft was withdrawn since the page loaded."
    ]
    assert message(fresh, draft)["status"] == "suppressed"


def test_regenerating_from_the_page_shows_the_new_text_to_decide_on(fresh: World) -> None:
    draft = add_draft(fresh, "a2", "reminder")  # (a1's name is <script> by now)
    with_facts(fresh, draft, WHEN)
    app = on_inbox("trainer-A@example.com")
    assert "1 draft waiting, most urgent first." in [c.value for c in app.caption]
    choose(app, draft, "Regenerate")
    button(app, f"restyle-warmer-{draft}").click()
    app.run()
    assert [s.value for s in app.success] == ["Regenerated: review the new text."]
    warmer = message(fresh, draft)["body"]
    assert warmer.startswith("Hi Client, looking forward to seeing you tomorrow!")
    assert [a.value for a in app.text_area] == [warmer]
    choose(app, draft, "Regenerate")  # a new version of the draft: its card starts afresh
    [ask] = [t for t in app.text_input if (t.key or "").startswith(f"instruction-{draft}")]
    ask.input("mention parking")
    button(app, f"regenerate-{draft}").click()
    app.run()
    [refused] = [w.value for w in app.warning]
    assert refused.startswith("Without a model a draft can only be made “shorter” or “warmer”")
    assert message(fresh, draft)["body"] == warmer


def test_reject_and_snooze_from_the_page(fresh: World) -> None:
    rejected = add_draft(fresh, "a1", "re_engagement", "Come back!")
    snoozed = add_draft(fresh, "a2", "milestone", "Great work!")
    app = on_inbox("trainer-A@example.com")
    choose(app, rejected, "Reject")
    [reason] = [t for t in app.text_input if (t.key or "").startswith(f"reason-{rejected}")]
    reason.input("not our tone")
    button(app, f"reject-{rejected}").click()
    app.run()
    choose(app, snoozed, "Snooze")
    button(app, f"snooze-{snoozed}").click()
    app.run()
    assert message(fresh, rejected)["rejected_reason"] == "not our tone"
    assert message(fresh, snoozed)["snoozed_until"] is not None
    assert not app.text_area


def test_bulk_approve_asks_for_confirmation_then_approves_what_was_shown(fresh: World) -> None:
    drafts = [add_draft(fresh, c, "confirmation", f"Booked, {c}!") for c in ("a1", "a2")]
    app = on_inbox("owner-L1@example.com")
    for d in drafts:
        app.checkbox(key=f"pick-{d}").check()
    app.run()
    app.button[[b.label for b in app.button].index("Approve selected")].click()
    app.run()
    assert all(message(fresh, d)["status"] == "pending_approval" for d in drafts)
    [confirm] = [b for b in app.button if b.label.startswith("Confirm: approve 2")]
    confirm.click()
    app.run()
    assert [s.value for s in app.success].count(
        "Approved: it will be sent within the studio's sending rules."
    ) == 2
    assert [message(fresh, d)["approved_by"] for d in drafts] == [fresh.users["owner-L1"].id] * 2


def test_a_client_has_no_inbox_and_reaching_the_page_shows_nothing(fresh: World) -> None:
    add_draft(fresh, "a1", "confirmation")
    app = signed_in("client-a1@example.com")
    assert app.title[0].value == "Welcome, client-a1"
    with pytest.raises(ValueError, match="Known pages: ") as refused:
        app.switch_page("views/inbox.py")
    assert "inbox" not in str(refused.value).split("Known pages: ")[1]
    # Hiding the page is not the protection: run it directly as the client, and RLS
    # leaves it nothing to show.
    direct = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app/views/inbox.py"))
    direct.session_state["token"] = fresh.token("client-a1")
    direct.session_state["user"] = fresh.users["client-a1"]
    direct.run()
    assert not direct.exception and not direct.text_area
    assert [i.value for i in direct.info] == [
        "Nothing waiting for you: every draft has been decided."
    ]


# --- escalations ----------------------------------------------------------------------------


def add_escalation(world: World, client: str, text: str, category: str) -> UUID:
    with world.database.connect() as conn:
        client_id = world.client_ids[client]
        location, trainer = conn.execute(
            "SELECT location_id, trainer_id FROM app.clients WHERE id = %s", (client_id,)
        ).fetchone()
        return conn.execute(
            """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
                   status, body, escalation_reason, purpose, trigger)
               VALUES (%s, %s, %s, 'outbound', 'SMS', 'escalated', %s, %s, 'reply', %s)
               RETURNING id""",
            (location, client_id, trainer, text, category,
             Jsonb({"event": "inbound_message", "guidance": "Call them now."})),
        ).fetchone()[0]  # fmt: skip


def test_the_owner_assigns_an_escalation_and_the_trainer_resolves_it(fresh: World) -> None:
    escalation = add_escalation(fresh, "a1", "My knee hurts after Tuesday", "injury")
    app = signed_in("owner-L1@example.com", page="views/escalations.py")
    assert not app.exception
    assert "My knee hurts after Tuesday" in [t.value for t in app.text]
    [to] = [s for s in app.selectbox if s.key == f"to-{escalation}"]
    to.set_value(fresh.users["trainer-A"].id)
    button(app, f"assign-{escalation}").click()
    app.run()
    assert [s.value for s in app.success] == ["Assigned to trainer-A."]
    refused = decide(fresh, "trainer-B", escalations.resolve, escalation, "called")
    assert not refused.ok
    blank = decide(fresh, "trainer-A", escalations.resolve, escalation, " ")
    assert not blank.ok and blank.detail == "Say how it was resolved."
    done = decide(fresh, "trainer-A", escalations.resolve, escalation, "Called, rebooked")
    assert done.ok
    row = message(fresh, escalation)
    assert (row["escalation_resolved_by"], row["escalation_resolution"]) == (
        fresh.users["trainer-A"].id, "Called, rebooked",
    )  # fmt: skip
    events, audit = logged(fresh, escalation)
    assert [e[0] for e in events] == ["escalation_assigned", "escalation_resolved"]
    assert [a[0] for a in audit] == ["escalation_assigned", "escalation_resolved"]
    app.run()
    assert [i.value for i in app.info] == ["No escalations waiting."]

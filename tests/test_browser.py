"""The AI Inbox in a real browser: the Streamlit server as users run it, driven by Chromium.

What AppTest cannot show: the page the browser actually renders (what is escaped, what
runs), sign-in through the real form, and a decision clicked in the real widgets.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import psycopg
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser_harness import (
    chromium,
    new_page,
    running_streamlit,
    screenshot,
    wait_for_run,
)
from tests.dbt_harness import dbt_ok
from tests.rls_world import (
    PASSWORD,
    World,
    add_draft,
    build_world,
    close_open_drafts,
    land_ghl_rows,
)
from trainu_dagster.db.server import Database

expect.set_options(timeout=30_000)  # a rerun on a busy 2-core CI machine can take a while

XSS_NAME = (
    "<script>window.__xss=1</script> "
    '<img src=x onerror="window.__xss=2"> '
    "[click](javascript:window.__xss=3)"
)
XSS_BODY = (
    "<script>window.__xss=4</script>\n"
    '<img src=x onerror="window.__xss=5">\n'
    "[click](javascript:window.__xss=6)"
)
XSS_THREAD = '<img src=x onerror="window.__xss=7"> <script>window.__xss=8</script>'


@pytest.fixture(scope="module")
def world(database: Database, tmp_path_factory: pytest.TempPathFactory) -> World:
    world = build_world(database)
    with database.connect() as conn:
        land_ghl_rows(conn)
    dbt_ok(
        database, tmp_path_factory.mktemp("dbt"), "build", "--exclude-resource-type", "unit_test"
    )
    return world


@pytest.fixture(scope="module")
def app_url(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_streamlit(world.database.url(), tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, app_url: str, world: World) -> Iterator[Page]:
    close_open_drafts(world)
    with new_page(browser) as page:
        page.goto(app_url)
        yield page


def sign_in(page: Page, who: str) -> None:
    expect(page.get_by_role("heading", name="TrainU")).to_be_visible()
    page.get_by_role("textbox", name="Email").fill(f"{who}@example.com")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Welcome, {who}")).to_be_visible()
    wait_for_run(page)


def open_page(page: Page, title: str) -> None:
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    wait_for_run(page)


def open_inbox(page: Page) -> None:
    open_page(page, "AI Inbox")


def draft_card(page: Page, client_name: str) -> Locator:
    """The bordered container of one draft: the innermost block holding its Approve button."""
    return (
        page.get_by_test_id("stVerticalBlock")
        .filter(has=page.get_by_text(client_name, exact=True))
        .filter(has=page.get_by_role("button", name="Approve", exact=True))
        .last
    )


def message_row(world: World, message_id: UUID) -> dict:
    with world.database.connect() as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute("SELECT * FROM app.messages WHERE id = %s", (message_id,)).fetchone()


def test_a_trainer_edits_and_approves_a_draft_in_the_browser(page: Page, world: World) -> None:
    mine = add_draft(world, "a1", "confirmation", "Hi a1! See you tomorrow at 9?")
    add_draft(world, "a2", "re_engagement", "Hi a2, we miss you at the studio.")
    add_draft(world, "b1", "confirmation", "Hi b1! Trainer B's client.")
    add_draft(world, "c1", "confirmation", "Hi c1! The other studio's client.")

    sign_in(page, "trainer-A")
    open_inbox(page)
    expect(page.get_by_text("2 drafts waiting, most urgent first.")).to_be_visible()
    expect(page.get_by_role("textbox", name="Message")).to_have_count(2)
    expect(page.get_by_text("Client a1", exact=True)).to_be_visible()
    expect(page.get_by_text("Client a2", exact=True)).to_be_visible()
    main = page.get_by_test_id("stMain")
    for hidden in ("Client b1", "Client c1", "Trainer B's client", "other studio"):
        expect(main).not_to_contain_text(hidden)
    expect(page.get_by_role("combobox", name="Trainer")).to_have_count(0)  # owners only
    assert screenshot(page, "inbox.png").stat().st_size > 0

    card = draft_card(page, "Client a1")
    text_area = card.get_by_role("textbox", name="Message")
    expect(text_area).to_have_value("Hi a1! See you tomorrow at 9?")
    edited = "Hi a1! See you tomorrow at 9:30 instead? Bring water."
    text_area.fill(edited)
    card.get_by_role("button", name="Approve", exact=True).click()
    # only the card reruns: it says what happened and leaves the decided draft's form
    expect(page.get_by_text("Approved as edited")).to_be_visible()
    wait_for_run(page)
    expect(page.get_by_role("textbox", name="Message")).to_have_count(1)
    open_inbox(page)  # the page, loaded again, counts what is left
    expect(page.get_by_text("1 draft waiting, most urgent first.")).to_be_visible()

    row = message_row(world, mine)
    assert row["status"] == "approved"
    assert row["approved_body"] == edited
    assert row["approved_by"] == world.users["trainer-A"].id
    assert row["decision"] == "approved_edited"


def test_client_text_renders_as_literal_text_never_as_html_or_markdown(
    page: Page, world: World
) -> None:
    with world.database.connect() as conn:
        location, trainer = conn.execute(
            "SELECT location_id, trainer_id FROM app.clients WHERE id = %s",
            (world.client_ids["a1"],),
        ).fetchone()
        world.client_ids["xss"] = conn.execute(
            """INSERT INTO app.clients (location_id, ghl_contact_id, trainer_id, name)
               VALUES (%s, 'contact-xss', %s, %s) RETURNING id""",
            (location, trainer, XSS_NAME),
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO raw.ghl_messages (location_id, message_id, contact_id, direction,
                   date_added, source_updated_at, payload, source)
               VALUES (%s, 'message-xss', 'contact-xss', 'inbound', now(), now(), %s, 'webhook')""",
            (location, psycopg.types.json.Jsonb({"body": XSS_THREAD})),
        )
    add_draft(world, "xss", "reply", XSS_BODY)

    sign_in(page, "trainer-A")
    open_inbox(page)
    card = draft_card(page, XSS_NAME)
    expect(card.get_by_role("textbox", name="Message")).to_have_value(XSS_BODY)
    expect(card.get_by_text(f"Client: {XSS_THREAD}", exact=True)).to_be_visible()

    main = page.get_by_test_id("stMain")
    shown = main.inner_text()
    for literal in (
        "<script>window.__xss=1</script>",
        '<img src=x onerror="window.__xss=2">',
        "[click](javascript:window.__xss=3)",
        XSS_THREAD,
    ):
        assert literal in shown
    html = page.content()
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    assert "window.__xss" not in "".join(
        page.locator("script").evaluate_all("scripts => scripts.map(s => s.textContent)")
    )
    app = page.get_by_test_id("stApp")
    for dangerous in ("script", "img[onerror]", 'img[src="x"]', 'a[href^="javascript:"]'):
        expect(app.locator(dangerous)).to_have_count(0)
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_the_owner_sees_every_trainers_drafts_and_can_filter(page: Page, world: World) -> None:
    add_draft(world, "a1", "confirmation", "Hi a1! Trainer A's client.")
    add_draft(world, "b1", "confirmation", "Hi b1! Trainer B's client.")
    add_draft(world, "c1", "confirmation", "Hi c1! The other studio's client.")

    sign_in(page, "owner-L1")
    open_inbox(page)
    expect(page.get_by_text("2 drafts waiting, most urgent first.")).to_be_visible()
    for shown in ("Client a1", "Client b1", "Trainer: Trainer A", "Trainer: Trainer B"):
        expect(page.get_by_text(shown, exact=True)).to_be_visible()
    expect(page.get_by_test_id("stMain")).not_to_contain_text("Client c1")
    trainer = page.get_by_role("combobox", name="Trainer")
    expect(trainer).to_be_visible()
    assert screenshot(page, "inbox-owner.png").stat().st_size > 0

    trainer.click()
    page.get_by_role("option", name="Trainer B").click()
    expect(page.get_by_text("1 draft waiting, most urgent first.")).to_be_visible()
    wait_for_run(page)
    expect(page.get_by_text("Client b1", exact=True)).to_be_visible()
    expect(page.get_by_text("Client a1", exact=True)).to_have_count(0)


def test_the_owner_opens_the_dashboard_and_sync_health(page: Page, world: World) -> None:
    sign_in(page, "owner-L1")
    open_page(page, "Dashboard")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("tab", name="Attendance", selected=True)).to_be_visible()
    expect(main.get_by_role("button", name="Download attendance (CSV)")).to_be_visible()
    expect(main).not_to_contain_text("Studio L2")
    screenshot(page, "dashboard.png")
    main.get_by_role("tab", name="Messages").click()  # a tab's section runs when opened
    expect(main.get_by_role("heading", name="Message funnel")).to_be_visible()
    expect(main.get_by_role("heading", name="Draft decisions")).to_be_visible()
    expect(main.get_by_role("button", name="Download attendance (CSV)")).to_have_count(0)
    wait_for_run(page)
    open_page(page, "Sync health")
    expect(main.get_by_role("heading", name="Dead-letter queue")).to_be_visible()
    expect(main.get_by_role("button", name="Retry")).to_have_count(1)  # L1's item only
    screenshot(page, "sync-health.png")

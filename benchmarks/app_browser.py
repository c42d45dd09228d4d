"""The Streamlit app in a real headless browser: what a trainer and an owner wait for.

Debian's Chromium driven by Playwright (as `tests/browser_harness.py` does) against a real
`streamlit run` server on a temporary embedded Postgres:

1. `inbox`: a studio with an owner, two trainers and 5,000 `pending_approval` drafts in the
   signed-in trainer's inbox (and 1,000 of the other trainer's, hidden by RLS), every
   purpose and trigger, 30 days of risk history per client, GHL threads for most clients.
   **Inbox first render**: from the click on "AI Inbox" until the first draft card (its
   Approve button and text area) is on screen and Streamlit's run is over (goal ≤ 1.5 s).
2. `approve`: **approve round-trip**, from the click on the first card's Approve until the
   success message is shown, the card is gone and the rerun is over (goal ≤ 300 ms); each
   approval is then checked in the database (approved, by the trainer, `approved_body` =
   the text the card showed).
3. `dashboard`: `benchmarks/dbt_build.py`'s 1,000,000 bookings (10 studios, 20,000
   clients), the full dbt build, 90 days of daily risk scores for every client and two
   decided drafts per trainer-day; the owner of one studio (2,000 clients, 100,000
   bookings) opens the **Dashboard**: from the click until Streamlit's run is over and
   every chart has drawn (goal ≤ 2 s).

Each page is timed right after the server started, then N times each in a fresh browser
profile (`first visit`: the app's lazily loaded JavaScript fetched and compiled again), in
a new tab of a warm profile (`new tab`: a new Streamlit session, signed in just before) and
in one tab, from Home back to the page (`back again`).

"Over" means what `tests/browser_harness.wait_for_run` waits for: the app's
`data-test-script-state` is `notRunning` and no element of the previous run is left
(`data-stale`); and no lazily loaded widget still shows its skeleton. Times are taken in
the page's clock, from the click event to the first animation frame that sees all of it,
so Playwright's round trips are not in them. The "Running..." status widget fades out in
a 200 ms CSS transition after the run; the time until it is gone is reported too. With
each sample: when the run started and ended as the page saw it, the Streamlit server's
CPU, the page's main-thread CPU and JavaScript time (DevTools `Performance.getMetrics`),
the elements and DOM nodes drawn, and the 1-minute load average; and one more render of
each under V8's profiler, its JavaScript self time by bundle file.

For each page the same render is also timed in-process with Streamlit's AppTest (the
script alone: no websocket, no browser), with every SQL statement it runs recorded, and
the costliest ones run again under EXPLAIN ANALYZE as the signed-in user (RLS included).

    make bench-app           # or: uv run python benchmarks/app_browser.py --help
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from playwright.sync_api import Browser, BrowserContext, Page, expect
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from benchmarks import dbt_build
from benchmarks.support import save_results, start_database, stop_database
from tests.app_harness import app_pointed_at, signed_in
from tests.browser_harness import VIEWPORT, chromium, running_streamlit, wait_for_run
from trainu_dagster import accounts
from trainu_dagster.assets.dbt import dbt_build_args
from trainu_dagster.db.server import APP_ROLE, AUTH_ROLE, Database
from trainu_dagster.inbox import decisions, queue

PASSWORD = "bench-password-for-the-app"  # noqa: S105 - a throwaway database
GOALS_MS = {"inbox": 1500, "approve": 300, "dashboard": 2000}
INBOX, DASHBOARD = "AI Inbox", "Dashboard"
TIMEOUT_MS = 60_000

# --- the inbox's studio ----------------------------------------------------------------------

FIRST = ["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Riley", "Casey", "Jamie", "Avery",
         "Quinn", "Priya", "Mateo", "Aisha", "Noah", "Chloe", "Liam", "Sofia", "Ethan", "Mia",
         "Lucas", "Zara", "Omar", "Hannah", "Diego"]  # fmt: skip
LAST = ["Smith", "Garcia", "Nguyen", "Patel", "Kim", "Okafor", "Rossi", "Müller", "Silva",
        "Cohen", "Brown", "Lopez", "Khan", "Dubois", "Novak", "Walsh", "Haddad", "Ito",
        "Jensen", "Reyes", "Baker", "Singh", "Moreau", "Costa"]  # fmt: skip
DRAFTS_PER_CLIENT = 4  # four distinct purposes of the 7 per client

CLIENTS_SQL = """
INSERT INTO app.clients (location_id, ghl_contact_id, trainer_id, name, phone, email)
SELECT 'bench', 'contact-' || n, t.id,
       (%(first)s::text[])[1 + n %% 24] || ' ' || (%(last)s::text[])[1 + (n / 24) %% 24],
       '+1212555' || lpad((n %% 10000)::text, 4, '0'), 'client' || n || '@example.com'
FROM generate_series(%(from)s::int, %(to)s::int) n
JOIN app.trainers t ON t.location_id = 'bench' AND t.ghl_user_id = %(trainer)s
"""

# Draft d belongs to client first + d / 4, purpose (d / 4 + d % 4) % 7: four distinct
# purposes per client. Bodies and triggers as the template drafter writes them.
DRAFTS_SQL = """
WITH purposes (i, purpose, event) AS (VALUES
    (0, 'confirmation', 'booking_created'), (1, 'reminder', 'session_tomorrow'),
    (2, 'no_show_checkin', 'no_show'), (3, 'reschedule_offer', 'late_cancel'),
    (4, 're_engagement', 'risk_high'), (5, 'milestone', 'goal_milestone'),
    (6, 'reply', 'inbound_message')
), d AS (
    SELECT d, %(first_client)s + d / 4 AS n, (d / 4 + d %% 4) %% 7 AS p,
           now() - (d %% 4320) * interval '1 minute' AS made,
           date_trunc('hour', now()) + (6 + d %% 60) * interval '1 hour' AS session_at
    FROM generate_series(0, %(count)s::int - 1) d
)
INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel, status,
    subject, body, draft_body, generator, purpose, safety, trigger, idempotency_key,
    scheduled_for, created_at, updated_at)
SELECT 'bench', c.id, c.trainer_id, 'outbound',
       CASE WHEN d.d %% 10 = 9 THEN 'Email' ELSE 'SMS' END, 'pending_approval',
       CASE WHEN d.d %% 10 = 9 THEN 'From your coach at Bench Strength Studio' END,
       b.body, b.body, CASE WHEN d.d %% 3 = 0 THEN 'openai' ELSE 'template' END, p.purpose,
       jsonb_build_object('ok', true, 'failed', '[]'::jsonb, 'details', '{}'::jsonb,
                          'sms_segments', CASE WHEN d.d %% 10 = 9 THEN NULL
                                               ELSE 1 + (length(b.body) > 160)::int END,
                          'escalate', false),
       jsonb_build_object('event', p.event, 'appointment_id', 'appt-' || d.n || '-' || d.d,
                          'start_time', d.session_at),
       p.purpose || ':bench:' || c.id || ':' || d.d,
       CASE WHEN p.purpose IN ('confirmation', 'reminder') THEN d.session_at - interval '20 hours'
            WHEN p.purpose IN ('no_show_checkin', 'reschedule_offer', 'reply')
                 THEN d.made + interval '2 hours' END,
       d.made, d.made
FROM d
JOIN purposes p ON p.i = d.p
JOIN app.clients c ON c.location_id = 'bench' AND c.ghl_contact_id = 'contact-' || d.n
CROSS JOIN LATERAL (SELECT split_part(c.name, ' ', 1) AS first_name) f
CROSS JOIN LATERAL (SELECT CASE p.purpose
    WHEN 'confirmation' THEN 'Hi ' || f.first_name || '! You''re booked for '
        || to_char(d.session_at, 'Dy DD Mon "at" HH12:MI am')
        || '. Reply YES to confirm, or let me know if you need another time.'
    WHEN 'reminder' THEN 'Hi ' || f.first_name || ', a quick reminder of tomorrow''s session at '
        || to_char(d.session_at, 'HH12:MI am') || '. Bring water and a towel. See you then!'
    WHEN 'no_show_checkin' THEN 'Hi ' || f.first_name || ', we missed you today. Everything OK? '
        || 'Reply and I''ll find you a new slot this week.'
    WHEN 'reschedule_offer' THEN 'No problem about today, ' || f.first_name
        || '. I have openings Thursday at 7:00 am or Saturday at 9:30 am. Want one of those?'
    WHEN 're_engagement' THEN 'Hi ' || f.first_name || ', it''s been a while since your last '
        || 'session and we miss you at the studio. Want me to hold your usual Tuesday slot?'
    WHEN 'milestone' THEN 'Great work, ' || f.first_name || '! You''re halfway to your goal: '
        || '3 kg down since you started. Keep it up!'
    ELSE 'Hi ' || f.first_name || ', yes, we can move you to 6:30 pm on Friday. I''ve pencilled '
        || 'it in; reply YES and it''s yours.'
    END AS body) b
"""

INSIGHTS_SQL = """
INSERT INTO app.insights (location_id, client_id, scored_at, risk_score, risk_band, reasons,
                          reason, features, model_version)
SELECT c.location_id, c.id, date_trunc('day', %(now)s::timestamptz) - k * interval '1 day',
       s.score, CASE WHEN s.score >= 0.7 THEN 'high' WHEN s.score >= 0.4 THEN 'medium'
                     ELSE 'low' END,
       jsonb_build_array(
           jsonb_build_object('factor', 'days_since_last_session', 'value', s.days,
                              'points', round(s.score * 0.6, 3)),
           jsonb_build_object('factor', 'no_shows_8_weeks', 'value', s.days %% 3,
                              'points', round(s.score * 0.4, 3))),
       'no session in ' || s.days || ' days (usually weekly); '
           || CASE WHEN s.score >= 0.7 THEN 'nothing booked' ELSE 'next session booked' END,
       jsonb_build_object('days_since_last_session', s.days, 'sessions_8_weeks', 8 - s.days / 4),
       'rules-v1'
FROM app.clients c
CROSS JOIN generate_series(0, %(days)s::int - 1) k
CROSS JOIN LATERAL (SELECT h, round((0.5 + 0.49 * sin(h + k / 9.0))::numeric, 4) AS score,
                           2 + (abs(h)::int + k) %% 27 AS days
                    FROM (SELECT hashtext(c.id::text)::float8 AS h) x) s
WHERE %(location)s::text IS NULL OR c.location_id = %(location)s
"""

THREADS_SQL = """
INSERT INTO raw.ghl_messages (location_id, message_id, conversation_id, contact_id, direction,
    message_type, status, date_added, source_updated_at, payload, source, landed_at)
SELECT 'bench', 'msg-' || n || '-' || k, 'conv-' || n, 'contact-' || n,
       CASE WHEN k %% 2 = 0 THEN 'outbound' ELSE 'inbound' END, 'SMS', 'delivered', at, at,
       jsonb_build_object('body', CASE k %% 4
           WHEN 0 THEN 'See you Tuesday at 6!'
           WHEN 1 THEN 'Thanks! Can we do 6:30 instead this week? Work is crazy.'
           WHEN 2 THEN 'Sure, 6:30 works. I''ve moved it.'
           ELSE 'Perfect, thank you. My knee is a bit sore, can we go easy on squats?' END),
       'pull', at
FROM generate_series(1, %(clients)s::int) n
CROSS JOIN generate_series(1, %(per_client)s::int) k
CROSS JOIN LATERAL (
    SELECT now() - (60 - k * 3) * interval '1 day' - (n %% 600) * interval '1 minute' AS at
) t
WHERE n %% 4 <> 0
"""


@dataclass
class InboxStudio:
    trainer_email: str
    trainer_user: accounts.User
    clients: int
    drafts: int


def seed_inbox(database: Database, drafts: int, other_drafts: int) -> InboxStudio:
    mine = -(-drafts // DRAFTS_PER_CLIENT)
    theirs = -(-other_drafts // DRAFTS_PER_CLIENT)
    with database.connect() as conn:
        conn.execute(
            """INSERT INTO app.locations (location_id, name, timezone)
               VALUES ('bench', 'Bench Strength Studio', 'America/New_York')"""
        )
        people = {}
        for local, role, name in (("owner", "owner", "Olive Owner"),
                                  ("jordan", "trainer", "Jordan Lee"),
                                  ("casey", "trainer", "Casey Moore")):  # fmt: skip
            people[local] = accounts.create_user(
                conn, location_id="bench", email=f"{local}@bench.example.com",
                password=PASSWORD, role=role, display_name=name,  # type: ignore[arg-type]
            )  # fmt: skip
        for ghl_user, local in (("user-1", "jordan"), ("user-2", "casey")):
            conn.execute(
                """INSERT INTO app.trainers (location_id, user_id, ghl_user_id, name)
                   VALUES ('bench', %s, %s, %s)""",
                (people[local].id, ghl_user, people[local].display_name),
            )
        names = {"first": FIRST, "last": LAST}
        conn.execute(CLIENTS_SQL, {**names, "from": 1, "to": mine, "trainer": "user-1"})
        conn.execute(
            CLIENTS_SQL, {**names, "from": mine + 1, "to": mine + theirs, "trainer": "user-2"}
        )
        conn.execute(DRAFTS_SQL, {"first_client": 1, "count": drafts})
        conn.execute(DRAFTS_SQL, {"first_client": mine + 1, "count": other_drafts})
        conn.execute(INSIGHTS_SQL, {"now": "now", "days": 30, "location": "bench"})
        conn.execute(THREADS_SQL, {"clients": mine + theirs, "per_client": 12})
        conn.commit()
        pending = conn.execute(
            """SELECT count(*) FROM app.messages m JOIN app.trainers t ON t.id = m.trainer_id
               WHERE m.status = 'pending_approval' AND t.user_id = %s""",
            (people["jordan"].id,),
        ).fetchone()[0]
    with database.connect(autocommit=True) as conn:
        conn.execute("ANALYZE")
    assert pending == drafts, (pending, drafts)
    return InboxStudio("jordan@bench.example.com", people["jordan"], mine, drafts)


# --- the dashboard's studios: dbt_build's dataset, then the app tables it lacks --------------

DECIDED_SQL = """
INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel, status, body,
    draft_body, approved_body, approved_by, approved_at, rejected_reason, generator, purpose,
    decision, decided_at, created_at, updated_at)
SELECT c.location_id, c.id, c.trainer_id, 'outbound', 'SMS', s.status, s.body,
       'Hi! See you tomorrow?', CASE WHEN s.status = 'approved' THEN s.body END,
       CASE WHEN s.status = 'approved' THEN o.id END,
       CASE WHEN s.status = 'approved' THEN s.at END,
       CASE WHEN s.status = 'rejected' THEN 'wrong time' END, 'template',
       (ARRAY['confirmation', 'reminder', 'no_show_checkin', 're_engagement'])[1 + x %% 4],
       s.decision, s.at, s.at - interval '3 hours', s.at
FROM generate_series(1, %(count)s::int) x
JOIN app.clients c ON c.ghl_contact_id = 'contact-' || (1 + x %% %(clients)s)
JOIN app.users o ON o.location_id = c.location_id AND o.role = 'owner'
CROSS JOIN LATERAL (SELECT
    %(now)s::timestamptz - (x %% (%(days)s * 24)) * interval '1 hour' AS at,
    CASE WHEN x %% 10 < 7 THEN 'approved_unedited' WHEN x %% 10 < 9 THEN 'approved_edited'
         ELSE 'rejected' END AS decision) d
CROSS JOIN LATERAL (SELECT d.at,
    d.decision, CASE WHEN d.decision = 'rejected' THEN 'rejected' ELSE 'approved' END AS status,
    CASE WHEN d.decision = 'approved_edited' THEN 'Hi! See you tomorrow at 9?'
         ELSE 'Hi! See you tomorrow?' END AS body) s
"""


def seed_dashboard(database: Database, args: argparse.Namespace) -> dict[str, Any]:
    """dbt_build's dataset, an owner per studio, risk history and decided drafts."""
    seconds = {"generate_s": dbt_build.generate(
        database, bookings=args.bookings, clients=args.clients, messages=args.messages
    )}  # fmt: skip
    started = time.monotonic()
    with database.connect() as conn:
        for n in range(1, 11):
            accounts.create_user(
                conn, location_id=f"loc-{n}", email=f"owner@loc-{n}.bench.example.com",
                password=PASSWORD, role="owner", display_name=f"Owner of Studio {n}",
            )  # fmt: skip
        print(f"  {args.insight_days} days of risk scores for every client...", flush=True)
        conn.execute(
            INSIGHTS_SQL, {"now": dbt_build.NOW, "days": args.insight_days, "location": None}
        )
        decided = 200 * 2 * args.insight_days  # two decisions per trainer-day
        conn.execute(
            DECIDED_SQL,
            {"count": decided, "clients": args.clients, "now": dbt_build.NOW,
             "days": args.insight_days},
        )  # fmt: skip
        conn.commit()
    seconds["app_rows_s"] = round(time.monotonic() - started, 1)
    print(f"  owners, risk history and {decided:,} decisions in {seconds['app_rows_s']} s")
    return seconds


def build_marts(database: Database, work: Path) -> float:
    """The full dbt build, as dbt_build.py times it, then what autovacuum would do."""
    dbt_build.parse(database, work)
    print("dbt full build...", flush=True)
    elapsed = dbt_build.timed_dbt(database, work, *dbt_build_args(full_refresh=True))
    with database.connect(autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return elapsed


# --- in the browser ------------------------------------------------------------------------

# Set on every document: the time of the last click and each change of Streamlit's script
# state, in the page's clock.
CLICK_CLOCK = """
window.__bench = {clickAt: null, states: []};
window.addEventListener('click', (e) => {
    window.__bench.clickAt = e.timeStamp;
    window.__bench.states = [];
}, true);
new MutationObserver((records) => {
    for (const r of records) {
        window.__bench.states.push(
            [r.target.getAttribute('data-test-script-state'), performance.now()]);
    }
}).observe(document, {subtree: true, attributes: true,
                      attributeFilter: ['data-test-script-state']});
"""

# true when Streamlit's run is over and the page's own elements are on screen; the value is
# the milliseconds since the last click. `arg`: {title, approve, gone, alert, charts}.
READY = """
(arg) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (document.querySelector('[data-stale="true"]')) return false;
    const main = document.querySelector('[data-testid="stMain"]');
    if (!main) return false;
    if (arg.gone && main.querySelector(`[class*="st-key-approve-${arg.gone}"]`)) return false;
    const visible = (el) => el.checkVisibility() && el.getBoundingClientRect().height > 0;
    const title = [...main.querySelectorAll('h1')].some(
        (h) => h.textContent.trim() === arg.title && visible(h));
    if (!title) return false;
    // lazily loaded widgets (the text area, charts) draw a skeleton until their code is in
    if (main.querySelector('[data-testid="stSkeleton"]')) return false;
    if (arg.approve) {
        const card = main.querySelector('[class*="st-key-approve-"]');
        const button = card && card.querySelector('button');
        if (!button || !visible(button) || button.innerText.trim() !== 'Approve') return false;
        const id = card.className.match(/st-key-approve-([0-9a-f-]{36})/)[1];
        const text = main.querySelector(`[class*="st-key-body-${id}"] textarea`);
        if (!text || !visible(text)) return false;
    }
    if (arg.alert) {
        // the decided card's own message if it is still on the page, else any message
        const mark = arg.gone && main.querySelector(`[class*="${arg.gone}"]`);
        const scope = (mark && mark.closest('[data-testid="stVerticalBlock"]')) || main;
        if (![...scope.querySelectorAll('[data-testid="stAlert"]')].some(
            (a) => a.innerText.includes(arg.alert) && visible(a))) return false;
    }
    if (arg.charts) {
        const charts = [...main.querySelectorAll('[data-testid="stVegaLiteChart"]')];
        if (charts.length === 0) return false;
        for (const chart of charts) {
            const drawn = [...chart.querySelectorAll('canvas, svg.marks')].some(
                (c) => c.getBoundingClientRect().width > 0 && c.getBoundingClientRect().height > 0);
            if (!drawn) return false;
        }
    }
    return performance.now() - window.__bench.clickAt;
}
"""
WIDGET_GONE = """
() => !document.querySelector('[data-testid="stStatusWidget"]')
      && performance.now() - window.__bench.clickAt
"""
# When the run started and ended, in ms since the click.
PHASES = """
() => {
    const b = window.__bench;
    const running = b.states.find(([state]) => state === 'running');
    const done = b.states.filter(([state]) => state === 'notRunning').pop();
    return {started: running ? running[1] - b.clickAt : null,
            finished: done ? done[1] - b.clickAt : null,
            elements: document.querySelectorAll('[data-testid="stElementContainer"]').length,
            nodes: document.getElementsByTagName('*').length};
}
"""
BROWSER_METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


def streamlit_process() -> psutil.Process:
    """The `streamlit run` that running_streamlit started (a child of this process)."""
    for child in psutil.Process().children(recursive=True):
        try:
            if "streamlit" in child.cmdline() and "run" in child.cmdline():
                return child
        except psutil.Error:
            continue
    raise RuntimeError("no streamlit process among this process's children")


def cpu_ms(process: psutil.Process) -> float:
    times = process.cpu_times()
    return (times.user + times.system) * 1000


class Probe:
    """What one click costs: in the page (timings, the main thread's work through the
    DevTools protocol) and on the server (the Streamlit process's CPU)."""

    def __init__(self, page: Page, server: psutil.Process) -> None:
        self.page, self.server = page, server
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Performance.enable")

    def _browser(self) -> dict[str, float]:
        metrics = {
            m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]
        }
        return {name: metrics.get(name, 0.0) * 1000 for name in BROWSER_METRICS}

    def click(self, click: Callable[[], None], **ready: Any) -> dict[str, float]:
        """Click, then wait in the page for READY(ready) and for the status widget to go."""
        self.page.evaluate("window.__bench.clickAt = null")
        before, server_before = self._browser(), cpu_ms(self.server)
        click()
        took = self.page.wait_for_function(READY, arg=ready, polling="raf", timeout=TIMEOUT_MS)
        server = cpu_ms(self.server) - server_before
        browser = self._browser()
        gone = self.page.wait_for_function(WIDGET_GONE, polling="raf", timeout=TIMEOUT_MS)
        phases = self.page.evaluate(PHASES)
        sample = {"ready": float(took.json_value()), "widget_gone": float(gone.json_value()),
                  "run_started": phases["started"], "run_finished": phases["finished"],
                  "server_cpu": server, "st_elements": phases["elements"],
                  "dom_nodes": phases["nodes"], "load1": os.getloadavg()[0]}  # fmt: skip
        for name in BROWSER_METRICS:
            sample[f"browser_{name.removesuffix('Duration').lower()}"] = (
                browser[name] - before[name]
            )
        return {k: round(v, 1) for k, v in sample.items() if v is not None}

    def profiled_click(self, click: Callable[[], None], **ready: Any) -> dict[str, Any]:
        """One more click under V8's sampling profiler (not timed: it slows the page):
        the main thread's JavaScript self time by script file, the top ones."""
        self.cdp.send("Profiler.enable")
        self.cdp.send("Profiler.setSamplingInterval", {"interval": 500})
        self.cdp.send("Profiler.start")
        sample = self.click(click, **ready)
        profile = self.cdp.send("Profiler.stop")["profile"]
        self.cdp.send("Profiler.disable")
        nodes = {node["id"]: node["callFrame"] for node in profile["nodes"]}
        self_ms: dict[str, float] = {}
        for node, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
            frame = nodes[node]
            name = frame["url"].rsplit("/", 1)[-1] or frame["functionName"] or "(anonymous)"
            name = re.sub(r"\.[\w-]{8}\.js$", ".js", name)  # drop the bundle's content hash
            self_ms[name] = self_ms.get(name, 0.0) + delta / 1000
        self_ms.pop("(idle)", None)
        top = sorted(self_ms.items(), key=lambda item: -item[1])[:10]
        return {"sample": sample, "js_self_ms_by_file": {k: round(v, 1) for k, v in top}}


def summarise(samples: list[dict[str, float]]) -> dict[str, Any]:
    """p50/p95/max of the time until ready, medians of the rest, and the samples."""
    keys = [k for k in samples[0] if k != "ready"]
    return {
        "ready": summary([s["ready"] for s in samples]),
        "median": {k: round(statistics.median(s[k] for s in samples if k in s), 1) for k in keys},
        "samples": [s["ready"] for s in samples],
    }


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    rank = max(0, -(-95 * len(ordered) // 100) - 1)  # nearest-rank p95
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 1),
            "p95": round(ordered[rank], 1), "max": round(ordered[-1], 1)}  # fmt: skip


def sign_in(page: Page, url: str, email: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name="TrainU")).to_be_visible()
    page.get_by_role("textbox", name="Email").fill(email)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Welcome, "))).to_be_visible()
    wait_for_run(page)


def nav(page: Page, title: str) -> Callable[[], None]:
    return lambda: page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()


def go_home(page: Page) -> None:
    nav(page, "Home")()
    expect(page.get_by_role("heading", name=re.compile("^Welcome, "))).to_be_visible()
    wait_for_run(page)


@contextmanager
def browser_profile(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: empty HTTP cache, no cookies."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(CLICK_CLOCK)
    try:
        yield context
    finally:
        context.close()


@contextmanager
def signed_in_tab(context: BrowserContext, url: str, email: str) -> Iterator[tuple[Page, Probe]]:
    """A new tab, so a new Streamlit session, signed in through the form."""
    page = context.new_page()
    try:
        sign_in(page, url, email)
        yield page, Probe(page, streamlit_process())
    finally:
        page.close()


KINDS = {
    "first_visit": "first visit",
    "new_tab": "new tab",
    "back_again": "back again",
}


def time_page(
    browser: Browser, url: str, email: str, title: str, loads: int, **ready: Any
) -> dict[str, Any]:
    """The page's render, from the click on its link in the sidebar, right after signing in:
    - once right after the server started (the page's first run imports its modules);
    - `first_visit`: `loads` times in a fresh browser profile (the app's lazily loaded
      JavaScript, e.g. charts and tables, fetched and compiled again);
    - `new_tab`: `loads` times in a new tab of one profile (a new Streamlit session, the
      browser's cache warm);
    - `back_again`: `loads` times in one tab, from Home back to the page;
    and once more under the JavaScript profiler."""
    go = {"title": title, **ready}
    samples: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    with browser_profile(browser) as context, signed_in_tab(context, url, email) as (page, probe):
        first = probe.click(nav(page, title), **go)
    for _ in range(loads):
        with browser_profile(browser) as context, signed_in_tab(context, url, email) as tab:
            samples["first_visit"].append(tab[1].click(nav(tab[0], title), **go))
    with browser_profile(browser) as context:
        with signed_in_tab(context, url, email) as (page, probe):
            probe.click(nav(page, title), **go)  # the cache is warm from here on
        for _ in range(loads):
            with signed_in_tab(context, url, email) as (page, probe):
                samples["new_tab"].append(probe.click(nav(page, title), **go))
        with signed_in_tab(context, url, email) as (page, probe):
            profiled_new_tab = probe.profiled_click(nav(page, title), **go)
        with signed_in_tab(context, url, email) as (page, probe):
            for _ in range(loads):
                go_home(page)
                samples["back_again"].append(probe.click(nav(page, title), **go))
            go_home(page)
            profiled = probe.profiled_click(nav(page, title), **go)
    return {
        "first_after_server_start": first,
        **{kind: summarise(taken) for kind, taken in samples.items()},
        "profiled_new_tab": profiled_new_tab,
        "profiled": profiled,
    }


FIRST_CARD = """
() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const button = main.querySelector('[class*="st-key-approve-"]');
    if (!button) return null;
    const id = button.className.match(/st-key-approve-([0-9a-f-]{36})/)[1];
    const text = main.querySelector(`[class*="st-key-body-${id}"] textarea`).value;
    return {id, text};
}
"""


def time_approvals(
    browser: Browser, url: str, database: Database, studio: InboxStudio, approvals: int
) -> dict[str, Any]:
    """Approve the first card `approvals` times; each checked in the database. (The page
    may keep decided cards on screen until it is drawn again: then it is opened again.)"""
    samples = []
    with (
        browser_profile(browser) as context,
        signed_in_tab(context, url, studio.trainer_email) as (page, probe),
    ):
        probe.click(nav(page, INBOX), title=INBOX, approve=True)
        for n in range(approvals + 1):
            card = page.evaluate(FIRST_CARD)
            if card is None:  # every card on the page decided
                go_home(page)
                probe.click(nav(page, INBOX), title=INBOX, approve=True)
                card = page.evaluate(FIRST_CARD)
            button = page.locator(f'[class*="st-key-approve-{card["id"]}"] button')
            click = probe.click if n < approvals else probe.profiled_click
            samples.append(click(button.click, title=INBOX, gone=card["id"], alert="Approved"))
            with database.connect() as conn:
                row = conn.execute(
                    """SELECT status, approved_body, approved_by, decision FROM app.messages
                       WHERE id = %s""",
                    (card["id"],),
                ).fetchone()
            assert row == ("approved", card["text"], studio.trainer_user.id,
                           "approved_unedited"), (row, card)  # fmt: skip
    profiled = samples.pop()
    return {**summarise(samples), "profiled": profiled, "verified_in_database": approvals + 1}


# --- in-process: AppTest, every SQL statement, EXPLAIN ANALYZE -------------------------------


@dataclass
class Statement:
    sql: str
    params: Any
    seconds: float


@contextmanager
def recording_statements() -> Iterator[list[Statement]]:
    """Every statement run through a psycopg cursor (client-side: execute fetches all)."""
    recorded: list[Statement] = []
    original = psycopg.Cursor.execute

    def execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(self, query, params, **kwargs)
        finally:
            text = query if isinstance(query, str) else repr(query)
            recorded.append(Statement(text, params, time.perf_counter() - started))

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    try:
        yield recorded
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]


def short(sql: str) -> str:
    return " ".join(sql.split())[:110]


def explain(database: Database, token: str, statement: Statement) -> dict[str, Any]:
    """EXPLAIN ANALYZE as the signed-in user (RLS and all), parameters inlined."""
    with database.connect(role=APP_ROLE) as conn, accounts.as_user(conn, token):
        cur = psycopg.ClientCursor(conn)
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params)
        plan = [row[0] for row in cur.fetchall()]
    timing = {
        line.split(":")[0].strip().lower().replace(" ", "_") + "_ms": float(line.split()[-2])
        for line in plan
        if line.startswith(("Planning Time", "Execution Time"))
    }
    return {**timing, "plan": plan}


def profile(
    database: Database, token: str, statements: list[Statement], explain_top: int
) -> dict[str, Any]:
    """The statements of one run grouped by text, the costliest explained."""
    by_sql: dict[str, list[Statement]] = {}
    for statement in statements:
        by_sql.setdefault(statement.sql, []).append(statement)
    groups = sorted(by_sql.values(), key=lambda group: -sum(s.seconds for s in group))
    slowest = []
    for group in groups[:explain_top]:
        entry: dict[str, Any] = {
            "sql": short(group[0].sql),
            "calls": len(group),
            "total_ms": round(sum(s.seconds for s in group) * 1000, 1),
        }
        text = group[0].sql.lstrip().upper()
        if text.startswith(("SELECT", "WITH")) and "SET_CONFIG" not in text:
            entry.update(explain(database, token, max(group, key=lambda s: s.seconds)))
        slowest.append(entry)
    return {"statements": len(statements),
            "sql_ms": round(sum(s.seconds for s in statements) * 1000, 1),
            "slowest_statements": slowest}  # fmt: skip


def timed_run(app: AppTest) -> float:
    started = time.perf_counter()
    app.run()
    assert not app.exception, app.exception
    return (time.perf_counter() - started) * 1000


def apptest_page(
    database: Database, email: str, page: str, runs: int, explain_top: int
) -> dict[str, Any]:
    """The page's script under AppTest (after one untimed run) `runs` times, then one
    recorded run and its costliest statements explained."""
    took = []
    with app_pointed_at(database):
        app = signed_in(email, PASSWORD, page=page, timeout=120)
        for _ in range(runs + 1):
            app.switch_page("views/home.py")
            app.run()
            app.switch_page(page)
            took.append(timed_run(app))
        app.switch_page("views/home.py")
        app.run()
        app.switch_page(page)
        with recording_statements() as statements:
            run_ms = timed_run(app)
        token = app.session_state["token"]
    return {"script": summary(took[1:]), "samples": [round(t, 1) for t in took[1:]],
            "recorded_run_ms": round(run_ms, 1),
            **profile(database, token, statements, explain_top)}  # fmt: skip


def apptest_approvals(
    database: Database, email: str, approvals: int, explain_top: int
) -> dict[str, Any]:
    """Approve the first card under AppTest (the callback and the inbox's rerun), the
    last approval recorded."""

    def approve(app: AppTest) -> float:
        button = next(b for b in app.button if b.key and b.key.startswith("approve-"))
        button.click()
        took = timed_run(app)
        assert any("Approved" in s.value for s in app.success), "no success message"
        return took

    with app_pointed_at(database):
        app = signed_in(email, PASSWORD, page="views/inbox.py", timeout=120)
        took = [approve(app) for _ in range(approvals)]
        with recording_statements() as statements:
            run_ms = approve(app)
        token = app.session_state["token"]
    return {"script": summary(took), "samples": [round(t, 1) for t in took],
            "recorded_run_ms": round(run_ms, 1),
            **profile(database, token, statements, explain_top)}  # fmt: skip


def approve_callback(
    database: Database, studio: InboxStudio, approvals: int, explain_top: int
) -> dict[str, Any]:
    """What the Approve button's callback does on the server, called directly as the page
    calls it (a connection bound to the session, then `decisions.approve`): its time split
    into connecting, SQL and the rest (Python), and the functions that take it (cProfile)."""
    with database.connect(role=AUTH_ROLE) as conn:
        token = accounts.sign_in(conn, studio.trainer_email, PASSWORD, lifetime=timedelta(hours=1))
    assert token is not None
    parts: dict[str, list[float]] = {"total": [], "connect": [], "sql": [], "other": []}
    profiler = cProfile.Profile()
    for n in range(approvals + 1):
        with database.connect(role=APP_ROLE) as conn, accounts.as_user(conn, token):
            draft = queue.pending_drafts(conn, now=datetime.now(UTC), limit=1)[0]
        loaded = decisions.Loaded(draft.id, draft.updated_at)
        with recording_statements() as statements:
            if n == approvals:
                profiler.enable()
            started = time.perf_counter()
            with database.connect(role=APP_ROLE) as conn, accounts.as_user(conn, token):
                connected = time.perf_counter()
                outcome = decisions.approve(
                    conn, studio.trainer_user, loaded, draft.body, now=datetime.now(UTC)
                )
            ended = time.perf_counter()
            profiler.disable()
        assert outcome.ok, outcome
        if n == approvals:
            break  # the profiled one is not timed
        sql = sum(s.seconds for s in statements)
        parts["total"].append((ended - started) * 1000)
        parts["connect"].append((connected - started) * 1000)
        parts["sql"].append(sql * 1000)
        parts["other"].append((ended - connected - sql) * 1000)
    stats = pstats.Stats(profiler)
    functions = sorted(
        ((f"{Path(file).name}:{name}", cum * 1000)
         for (file, _, name), (_, _, _, cum, _) in stats.stats.items()  # type: ignore[attr-defined]
         if "trainu_dagster" in file and name != "approve"),
        key=lambda item: -item[1],
    )[:8]  # fmt: skip
    return {
        "median_ms": {k: round(statistics.median(v), 1) for k, v in parts.items()},
        "total": summary(parts["total"]),
        "statements": len(statements),
        "profiled_cumulative_ms": {name: round(ms, 1) for name, ms in functions},
        **{k: v for k, v in profile(database, token, statements, explain_top).items()
           if k == "slowest_statements"},
    }  # fmt: skip


# --- the runs ------------------------------------------------------------------------------


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class OthersCpu:
    """The CPU that processes other than this benchmark's use meanwhile (the machine is
    shared), sampled every second: ours are this process, its descendants (Streamlit,
    Playwright, Chromium) and the embedded Postgres serving `pgdata` with its backends."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = str(pgdata)
        self.cores: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ours(self, processes: list[psutil.Process]) -> set[int]:
        me = psutil.Process()
        ours = {me.pid, *(p.pid for p in me.children(recursive=True))}
        for proc in processes:
            try:
                if self.pgdata in " ".join(proc.cmdline()):
                    ours |= {proc.pid, *(c.pid for c in proc.children(recursive=True))}
            except psutil.Error:
                continue
        return ours

    def _sample(self) -> tuple[float, dict[int, float]]:
        processes = list(psutil.process_iter())
        ours, used = self._ours(processes), {}
        for proc in processes:
            if proc.pid in ours:
                continue
            try:
                times = proc.cpu_times()
                used[proc.pid] = times.user + times.system
            except psutil.Error:
                continue
        return time.monotonic(), used

    def _run(self) -> None:
        before, used_before = self._sample()
        while not self._stop.wait(1.0):
            now, used = self._sample()
            spent = sum(t - used_before.get(pid, t) for pid, t in used.items())
            self.cores.append(max(spent, 0.0) / (now - before))
            before, used_before = now, used

    def __enter__(self) -> OthersCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        values = self.cores or [0.0]
        return {"mean": round(statistics.fmean(values), 2), "max": round(max(values), 2)}


def bench_inbox(args: argparse.Namespace) -> dict[str, Any]:
    database, work = start_database("app-inbox")
    results: dict[str, Any] = {"load_before": load(), "drafts": args.drafts}
    try:
        started = time.monotonic()
        studio = seed_inbox(database, args.drafts, args.other_drafts)
        print(f"inbox: {studio.drafts:,} pending drafts for {studio.clients:,} clients of one "
              f"trainer seeded in {time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        with (
            running_streamlit(database.url(), work) as url,
            chromium() as browser,
            OthersCpu(work / "pgdata") as others,
        ):
            print(f"  inbox first render: {args.loads} times each way...", flush=True)
            results["inbox"] = time_page(
                browser, url, studio.trainer_email, INBOX, args.loads, approve=True
            )
            print(f"  {args.approvals} approvals...", flush=True)
            results["approve"] = time_approvals(browser, url, database, studio, args.approvals)
        results["load_after_browser"] = load()
        results["others_cores_in_browser_phase"] = others.summary()
        if args.apptest:
            print("  AppTest and SQL profile...", flush=True)
            results["inbox_apptest"] = apptest_page(
                database, studio.trainer_email, "views/inbox.py", args.loads, args.explain
            )
            results["approve_apptest"] = apptest_approvals(
                database, studio.trainer_email, args.approvals, args.explain
            )
        results["approve_callback"] = approve_callback(
            database, studio, args.approvals, args.explain
        )
    finally:
        stop_database(work)
    results["load_after"] = load()
    return results


def bench_dashboard(args: argparse.Namespace) -> dict[str, Any]:
    database, work = start_database("app-dashboard")
    results: dict[str, Any] = {
        "load_before": load(),
        "bookings": args.bookings,
        "clients": args.clients,
        "insight_days": args.insight_days,
    }
    email = "owner@loc-1.bench.example.com"
    try:
        results.update(seed_dashboard(database, args))
        results["full_build_s"] = round(build_marts(database, work), 1)
        with database.connect() as conn:
            results["studio_bookings"] = conn.execute(
                "SELECT count(*) FROM marts.bookings WHERE location_id = 'loc-1'"
            ).fetchone()[0]
        print(f"dashboard: owner of loc-1 ({results['studio_bookings']:,} bookings)...")
        with (
            running_streamlit(database.url(), work) as url,
            chromium() as browser,
            OthersCpu(work / "pgdata") as others,
        ):
            results["dashboard"] = time_page(
                browser, url, email, DASHBOARD, args.dashboard_loads, charts=True
            )
        results["load_after_browser"] = load()
        results["others_cores_in_browser_phase"] = others.summary()
        if args.apptest:
            print("  AppTest and SQL profile...", flush=True)
            results["dashboard_apptest"] = apptest_page(
                database, email, "views/dashboard.py", args.dashboard_loads, args.explain
            )
    finally:
        stop_database(work)
    results["load_after"] = load()
    return results


PHASE_COLUMNS = {
    "run_started": "run starts",
    "run_finished": "run ends",
    "widget_gone": "widget gone",
    "server_cpu": "server CPU",
    "browser_task": "page CPU",
    "browser_script": "page JS",
    "st_elements": "elements",
    "dom_nodes": "DOM nodes",
    "load1": "load 1 min",
}


def report(results: dict[str, Any]) -> None:
    head = "".join(f"{label:>12}" for label in PHASE_COLUMNS.values())
    print(f"\n{'ms':<28}{'p50':>7}{'p95':>7}{'max':>7}  goal (p95)      | medians:{head}")
    for part, name in (("inbox", "inbox"), ("inbox", "approve"), ("dashboard", "dashboard")):
        got = results.get(part, {}).get(name)
        if not got:
            continue
        kinds = [(f"{name}, {label}", got[kind]) for kind, label in KINDS.items() if kind in got]
        kinds = kinds or [(name, got)]
        for label, figures in kinds:
            r, m = figures["ready"], figures["median"]
            verdict = "met" if r["p95"] <= GOALS_MS[name] else "NOT met"
            phases = "".join(
                f"{m.get(key, float('nan')):>12.{1 if key == 'load1' else 0}f}"
                for key in PHASE_COLUMNS
            )
            print(f"{label:<28}{r['p50']:>7.0f}{r['p95']:>7.0f}{r['max']:>7.0f}  "
                  f"≤ {GOALS_MS[name]}: {verdict:<7} |         {phases}")  # fmt: skip
        if "first_after_server_start" in got:
            first = got["first_after_server_start"]
            phases = "".join(
                f"{first.get(key, float('nan')):>12.{1 if key == 'load1' else 0}f}"
                for key in PHASE_COLUMNS
            )
            print(f"{name + ', first after start':<28}{first['ready']:>7.0f}{'':>32}|         "
                  f"{phases}")  # fmt: skip
        apptest = results[part].get(f"{name}_apptest")
        if apptest:
            s = apptest["script"]
            print(f"{name + ', AppTest (script)':<28}{s['p50']:>7.0f}{s['p95']:>7.0f}"
                  f"{s['max']:>7.0f}")  # fmt: skip
    for part in ("inbox", "approve", "dashboard"):
        owner = "dashboard" if part == "dashboard" else "inbox"
        for key, label in (("profiled_new_tab", "new tab"), ("profiled", "back again")):
            profiled = results.get(owner, {}).get(part, {}).get(key)
            if profiled:
                files = ", ".join(f"{k} {v:.0f}" for k, v in profiled["js_self_ms_by_file"].items())
                print(f"\n{part}: page JavaScript self time (ms) in one profiled render "
                      f"({label if part != 'approve' else 'approval'}): {files}")  # fmt: skip
        apptest = results.get(owner, {}).get(f"{part}_apptest")
        if not apptest:
            continue
        print(
            f"\n{part}: one AppTest run {apptest['recorded_run_ms']:.0f} ms, of which SQL "
            f"{apptest['sql_ms']:.0f} ms in {apptest['statements']} statements; costliest:"
        )
        for s in apptest["slowest_statements"]:
            explained = (f" [EXPLAIN ANALYZE {s['execution_time_ms']:.1f} ms"
                         f" + planning {s['planning_time_ms']:.1f} ms]"
                         if "execution_time_ms" in s else "")  # fmt: skip
            print(f"  {s['total_ms']:7.1f} ms {s['calls']:>3}× {s['sql'][:90]}{explained}")
    callback = results.get("inbox", {}).get("approve_callback")
    if callback:
        m = callback["median_ms"]
        functions = ", ".join(f"{k} {v:.0f}" for k, v in callback["profiled_cumulative_ms"].items())
        print(f"\napprove callback alone (decisions.approve on its own connection), median: "
              f"{m['total']:.0f} ms = connect {m['connect']:.0f} + SQL {m['sql']:.0f} "
              f"({callback['statements']} statements) + Python {m['other']:.0f}; "
              f"cumulative ms in one profiled call: {functions}")  # fmt: skip
        for s in callback["slowest_statements"]:
            print(f"  {s['total_ms']:7.1f} ms {s['calls']:>3}× {s['sql'][:90]}")
    for part in ("inbox", "dashboard"):
        if part in results:
            r = results[part]
            print(f"load average ({part}): before {r['load_before']}, after the browser "
                  f"{r.get('load_after_browser')}, at the end {r['load_after']}; other "
                  f"processes' CPU in the browser phase (cores, of {os.cpu_count()}): "
                  f"{r.get('others_cores_in_browser_phase')}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["inbox", "dashboard"], help="run one part")
    parser.add_argument("--drafts", type=int, default=5_000, help="in the trainer's inbox")
    parser.add_argument("--other-drafts", type=int, default=1_000, help="another trainer's")
    parser.add_argument("--loads", type=int, default=10, help="inbox renders of each kind")
    parser.add_argument("--approvals", type=int, default=20)
    parser.add_argument("--dashboard-loads", type=int, default=10)
    parser.add_argument("--bookings", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--insight-days", type=int, default=90, help="risk history, every client")
    parser.add_argument("--explain", type=int, default=5, help="slowest statements explained")
    parser.add_argument("--no-apptest", dest="apptest", action="store_false")
    parser.add_argument(
        "--streamlit-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config option for the Streamlit server under test, e.g. "
        "runner.postScriptGC=false (passed as its STREAMLIT_* environment variable)",
    )
    args = parser.parse_args()
    for option in args.streamlit_option:
        key, _, value = option.partition("=")
        os.environ[streamlit_config._config_options_template[key].env_var] = value

    results: dict[str, Any] = {"cores": os.cpu_count(), "args": vars(args)}
    if args.only in (None, "inbox"):
        results["inbox"] = bench_inbox(args)
    if args.only in (None, "dashboard"):
        results["dashboard"] = bench_dashboard(args)
    out = save_results("app", results)
    report(results)
    print(f"results {out}")


if __name__ == "__main__":
    main()

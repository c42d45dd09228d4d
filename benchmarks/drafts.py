"""Drafting at scale: templates end to end, and the model's throughput.

1. `templates`: 10,000 drafts through `messaging.drafts.make_drafts` with the template
   drafter: what is wanted checked, drafted, every safety rule run, the drafts, their
   agent telemetry and product events written and committed (goal ≤ 10 s).
2. `llm`: drafts through `OpenAIDrafter` (the real SDK over real HTTP) against a local
   OpenAI-compatible server that answers each request in 300 ms (goal ≥ 40 drafts/s).

    make bench-drafts        # or: uv run python benchmarks/drafts.py --help
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime, timedelta

from benchmarks.support import save_results, start_database, stop_database
from tests.fake_openai import fake_openai
from trainu_dagster.messaging.drafting import (
    PURPOSES,
    DraftRequest,
    OpenAIDrafter,
    StudioVoice,
    TemplateDrafter,
)
from trainu_dagster.messaging.drafts import make_drafts
from trainu_dagster.messaging.drafts_rules import DraftPlan

TRAINER_BOOK = 200  # clients per trainer: whose names a draft must not mention

STUDIO = [
    """INSERT INTO app.locations (location_id, name, timezone)
       VALUES ('bench', 'Bench Strength Studio', 'America/New_York')""",
    """INSERT INTO app.trainers (id, location_id, name)
       SELECT md5('trainer' || t)::uuid, 'bench', 'Trainer ' || t
       FROM generate_series(0, %(n)s / %(book)s) AS t""",
    """INSERT INTO app.clients (id, location_id, ghl_contact_id, trainer_id, name, phone)
       SELECT md5('client' || n)::uuid, 'bench', 'contact-' || n,
              md5('trainer' || (n / %(book)s))::uuid, 'Client' || n || ' Example',
              '+1212555' || lpad((n %% 10000)::text, 4, '0')
       FROM generate_series(1, %(n)s) AS n""",
]


def bench_templates(drafts: int) -> dict[str, object]:
    database, work = start_database("drafts")
    try:
        with database.connect() as conn:
            for statement in STUDIO:
                conn.execute(statement, {"n": drafts, "book": TRAINER_BOOK})
            ids = [row[0] for row in conn.execute("SELECT id FROM app.clients ORDER BY id")]
            conn.commit()
            start = datetime.now(UTC) + timedelta(days=2)
            plans = [
                DraftPlan(
                    purpose="confirmation",
                    location_id="bench",
                    client_id=client_id,
                    key=f"confirmation:bench:{client_id}",
                    facts={"session_when": "Fri 4 Dec at 6:30 pm"},
                    trigger={
                        "event": "booked",
                        "appointment_id": str(client_id),
                        "start_time": start.isoformat(),
                    },
                    correlation_id=uuid.uuid4(),
                )  # fmt: skip
                for client_id in ids
            ]
            started = time.perf_counter()
            outcome = make_drafts(conn, plans, TemplateDrafter(), now=datetime.now(UTC))
            conn.commit()
            elapsed = time.perf_counter() - started
    finally:
        stop_database(work)
    print(f"templates: {len(outcome.created)} drafted ({len(outcome.needs_manual)} need manual "
          f"work) in {elapsed:.2f} s = {len(plans) / elapsed:,.0f}/s", flush=True)  # fmt: skip
    return {"drafts": len(plans), "created": len(outcome.created),
            "needs_manual": len(outcome.needs_manual), "seconds": round(elapsed, 2)}  # fmt: skip


def bench_llm(drafts: int, latency: float, concurrency: int) -> dict[str, object]:
    voice = StudioVoice("Bench Strength Studio")
    purposes = list(PURPOSES)
    requests = [
        DraftRequest(
            purpose=purposes[i % len(purposes)],
            channel="SMS",  # type: ignore[arg-type]
            client_first_name=f"Client{i}",
            trainer_name="Jordan Lee",
            voice=voice,
            facts={"session_when": "Fri 4 Dec at 6:30 pm"},
        )  # fmt: skip
        for i in range(drafts)
    ]
    with fake_openai("schema", delay_seconds=latency) as (url, fake):
        model = OpenAIDrafter(api_key="sk-bench", base_url=url, model="gpt-4o-mini",
                              max_concurrency=concurrency)  # fmt: skip
        model.draft(requests[0])  # connect once, as a running drafter has
        started = time.perf_counter()
        results = model.draft_many(requests)
        elapsed = time.perf_counter() - started
        model.close()
    ok = sum(r.outcome == "ok" for r in results)
    print(f"llm: {ok}/{drafts} drafted by the model in {elapsed:.2f} s = {drafts / elapsed:.1f}/s "
          f"({latency * 1000:.0f} ms per answer, {concurrency} at once, at most "
          f"{fake.max_in_flight} in flight)", flush=True)  # fmt: skip
    return {"drafts": drafts, "ok": ok, "seconds": round(elapsed, 2),
            "per_second": round(drafts / elapsed, 1), "latency_ms": latency * 1000,
            "concurrency": concurrency}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drafts", type=int, default=10_000)
    parser.add_argument("--llm-drafts", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.3, help="the fake model's, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="openai_max_concurrency")
    args = parser.parse_args()
    results = {
        "templates": bench_templates(args.drafts),
        "llm": bench_llm(args.llm_drafts, args.latency, args.concurrency),
    }
    print(f"results {save_results('drafts', results)}")


if __name__ == "__main__":
    main()

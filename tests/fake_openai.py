"""A local OpenAI-compatible chat server, so the real `openai` SDK runs over real HTTP.

It plays the model servers TrainU meets: one with structured outputs, one with JSON mode
only, one that answers garbage, refuses, is slow or rate-limited, and a naive model that
does whatever the quoted data asks (to prove the drafter, not the model, keeps the rules).
Every request body is recorded for the tests to read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.receiver_harness import serving

Mode = Literal["schema", "json_mode_only", "garbage", "refusal", "slow", "rate_limited",
               "obedient", "escalate", "promising"]  # fmt: skip

CANNED = {
    "confirmation": "you’re all set for {when}. Reply YES to confirm!",  # a model's apostrophe
    "reminder": "quick reminder of your session tomorrow, {when}. See you there!",
    "no_show_checkin": "we missed you today. All good? Reply and we'll find a new time.",
    "reschedule_offer": "no worries about today. Want to pick another time this week?",
    "re_engagement": "we miss you at the studio! Fancy a session this week?",
    "milestone": "huge congratulations on your progress. Keep it up!",
    "reply": "thanks for your message, happy to help. Let's sort it out.",
    "opt_out_confirmation": "you're unsubscribed and won't get any more messages from us.",
}


@dataclass
class FakeOpenAI:
    mode: Mode = "schema"
    delay_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests it ever held at once

    async def completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_seconds or self.mode == "slow":
                await asyncio.sleep(self.delay_seconds or 5.0)
            return self._answer(body)
        finally:
            self.in_flight -= 1

    def _answer(self, body: dict[str, Any]) -> JSONResponse:
        if self.mode == "rate_limited":
            return _error(429, "Rate limit reached for requests", "rate_limit_exceeded")
        kind = (body.get("response_format") or {}).get("type")
        if self.mode == "json_mode_only" and kind == "json_schema":
            return _error(
                400, "response_format 'json_schema' is not supported", "invalid_request_error"
            )
        return JSONResponse(_completion(body, self._message(body)))

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "refusal":
            return {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        if self.mode == "garbage":
            return {"role": "assistant", "content": "Sure!! here is ur msg: hey come back lol"}
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        data = json.loads(user.split("\n", 1)[1])
        if self.mode == "promising":  # breaks a safety rule however it is asked
            return _json_message(f"Hi {data['client_first_name']}, book this week and get 50% "
                                 "off your next pack!", escalate=False)  # fmt: skip
        if self.mode == "obedient":  # does what the client's quoted words say
            text = f"Hi {data['client_first_name']}! " + data["thread"][-1]["text"]
            return _json_message(text, escalate=False)
        if "previous_draft" in data:  # a rewrite the trainer asked for: a short one
            when = data["facts"].get("session_when", "soon")
            return _json_message(f"Hi {data['client_first_name']}, see you {when}!", escalate=False)
        purpose = next(p for p in CANNED if f"Purpose: {_purpose_line(p)}" in system)
        text = f"Hi {data['client_first_name']}, " + CANNED[purpose].format(
            when=data["facts"].get("session_when", "your session")
        )
        if "Reply STOP to opt out" in system:
            text += " Reply STOP to opt out."
        return _json_message(text, escalate=self.mode == "escalate")


def _purpose_line(purpose: str) -> str:
    from trainu_dagster.messaging.drafting import PURPOSES  # noqa: PLC0415

    return PURPOSES[purpose]


def _json_message(text: str, *, escalate: bool) -> dict[str, Any]:
    content = json.dumps({"text": text, "tone": "warm", "escalate": escalate})
    return {"role": "assistant", "content": content, "refusal": None}


def _completion(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 310, "completion_tokens": 42, "total_tokens": 352},
    }


def _error(status: int, message: str, code: str) -> JSONResponse:
    error = {"message": message, "type": code, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


@contextmanager
def fake_openai(
    mode: Mode = "schema", delay_seconds: float = 0.0
) -> Iterator[tuple[str, FakeOpenAI]]:
    """The fake served on loopback: yields its `/v1` base URL and its state."""
    fake = FakeOpenAI(mode=mode, delay_seconds=delay_seconds)
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    with serving(app) as url:
        yield f"{url}/v1", fake

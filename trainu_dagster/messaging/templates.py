"""The offline drafts: one template per purpose and channel, owner-editable, rendered sandboxed.

Templates are the embedded default (no model, no key, deterministic) and the fallback of
every model failure, so each must pass the safety validators on its own. An owner may
replace the body of any purpose (`StudioVoice.templates`); owner text is Jinja2 rendered
in a sandbox with strict undefined variables, so a typo is an error the owner sees
(`check_template`), never a draft with a hole in it. Values (names, GHL text) are data:
Jinja never evaluates what a variable holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The variables every template may use; the facts of a trigger fill the rest (empty if unknown).
VARIABLES = (
    "first_name", "trainer", "studio", "sign_off", "session_when", "days_since_visit",
    "goal_title", "achievement", "question",
)  # fmt: skip

SMS: dict[str, str] = {
    "confirmation": (
        "Hi {{ first_name }}, you're booked with {{ trainer }} for {{ session_when }}. "
        "Reply YES to confirm, or let us know if you need another time."
    ),
    "reminder": (
        "Hi {{ first_name }}, see you tomorrow! Your session with {{ trainer }} is "
        "{{ session_when }}. Reply YES to confirm, or let us know if you need to move it."
    ),
    "no_show_checkin": (
        "Hi {{ first_name }}, we missed you at your session ({{ session_when }}). "
        "Everything OK? Reply and we'll find a new time that suits you."
    ),
    "reschedule_offer": (
        "Hi {{ first_name }}, sorry you couldn't make {{ session_when }}. Want to pick "
        "another time this week? Reply with a day that works for you."
    ),
    "re_engagement": (
        "Hi {{ first_name }}, it's {{ trainer }}. We haven't seen you in a while and would "
        "love to have you back. Want me to save you a spot this week? Reply STOP to opt out."
    ),
    "milestone": (
        "Congratulations {{ first_name }}! You've {{ achievement }}: {{ goal_title }}. "
        "Brilliant work, keep it going!"
    ),
    "reply": (
        "Hi {{ first_name }}, thanks for your message! {{ trainer }} will get back to you shortly."
    ),
    "opt_out_confirmation": (
        "Hi {{ first_name }}, you're unsubscribed from {{ studio }} messages and won't hear "
        "from us again."
    ),
}
# The same messages rewritten as a trainer asks in the inbox ("shorter", "warmer"): what
# the offline drafter can do without a model. Each passes the safety rules on its own.
RESTYLED: dict[str, dict[str, str]] = {
    "shorter": {
        "confirmation": (
            "Hi {{ first_name }}, booked: {{ session_when }} with {{ trainer }}. "
            "Reply YES to confirm."
        ),
        "reminder": (
            "Hi {{ first_name }}, see you tomorrow, {{ session_when }}. Reply YES to confirm."
        ),
        "no_show_checkin": (
            "Hi {{ first_name }}, we missed you today. All OK? Reply for a new time."
        ),
        "reschedule_offer": (
            "Hi {{ first_name }}, sorry you missed {{ session_when }}. Reply with a day that suits."
        ),
        "re_engagement": (
            "Hi {{ first_name }}, we miss you! Want a spot this week? Reply STOP to opt out."
        ),
        "milestone": "Congratulations {{ first_name }}, you've {{ achievement }}! Keep going!",
        "reply": "Hi {{ first_name }}, thanks! {{ trainer }} will reply shortly.",
        "opt_out_confirmation": "{{ first_name }}, unsubscribed: no more messages from us.",
    },
    "warmer": {
        "confirmation": (
            "Hi {{ first_name }}, lovely to have you booked in! {{ trainer }} is looking forward "
            "to seeing you {{ session_when }}. Reply YES to confirm, and if that time stops "
            "working, just tell us and we'll sort it."
        ),
        "reminder": (
            "Hi {{ first_name }}, looking forward to seeing you tomorrow! Your session with "
            "{{ trainer }} is {{ session_when }}. Reply YES to confirm, or let us know if you "
            "need to move it, no problem at all."
        ),
        "no_show_checkin": (
            "Hi {{ first_name }}, we missed you at your session ({{ session_when }}) and just "
            "wanted to check you're OK. No worries at all: reply whenever suits and we'll find "
            "a new time together."
        ),
        "reschedule_offer": (
            "Hi {{ first_name }}, no worries about {{ session_when }}, life happens! Would you "
            "like to pick another time this week? Reply with a day that works and we'll fit you in."
        ),
        "re_engagement": (
            "Hi {{ first_name }}, it's {{ trainer }}. We've really missed seeing you and would "
            "love to welcome you back whenever you're ready. Shall I save you a spot this week? "
            "Reply STOP to opt out."
        ),
        "milestone": (
            "Congratulations {{ first_name }}! You've {{ achievement }}: {{ goal_title }}. "
            "We're so proud of the work you've put in. Keep it going!"
        ),
        "reply": (
            "Hi {{ first_name }}, thank you so much for your message! {{ trainer }} will get "
            "back to you personally very soon."
        ),
        "opt_out_confirmation": (
            "Done, {{ first_name }}: you're unsubscribed from {{ studio }} messages and won't "
            "hear from us again. Thank you for training with us."
        ),
    },
}
SUBJECTS: dict[str, str] = {
    "confirmation": "You're booked: {{ session_when }}",
    "reminder": "See you tomorrow: {{ session_when }}",
    "no_show_checkin": "We missed you today",
    "reschedule_offer": "Let's find you a new time",
    "re_engagement": "We'd love to see you back",
    "milestone": "Congratulations, {{ first_name }}!",
    "reply": "Re: your message",
    "opt_out_confirmation": "You're unsubscribed",
}
# An email is the SMS text with a greeting line break and a signature.
EMAIL_SIGNATURE = "\n\n{{ sign_off }}\n{{ trainer }}, {{ studio }}"

_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
)


class TemplateProblem(ValueError):
    """An owner template that cannot render: shown to the owner, never sent."""


@lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    """Compiling costs a millisecond, rendering microseconds: each source compiles once."""
    return _ENV.from_string(source)


def render(source: str, variables: Mapping[str, str]) -> str:
    """The template filled in, whitespace tidied; `TemplateProblem` if it cannot be."""
    try:
        text = _compiled(source).render(**variables)
    except TemplateError as error:
        raise TemplateProblem(f"template error: {error.message or error}") from error
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def check_template(source: str) -> str | None:
    """Why an owner's template would not render (unknown variable, bad syntax), or None."""
    try:
        render(source, dict.fromkeys(VARIABLES, "x"))
    except TemplateProblem as problem:
        return str(problem)
    return None


def default_body(purpose: str, channel: str, style: str | None = None) -> str:
    """The built-in text for a purpose, as written or restyled (`RESTYLED`)."""
    body = RESTYLED[style][purpose] if style else SMS[purpose]
    return body + (EMAIL_SIGNATURE if channel == "Email" else "")

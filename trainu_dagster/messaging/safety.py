"""Safety validators: every draft, whoever wrote it (the model, a template, an owner's
template), is checked before a trainer sees it.

Each rule is a small function that returns why the draft breaks it, or None. A draft that
breaks any rule is regenerated once, then kept as `needs_manual` with the rules shown.
The rules guard what a studio must never send: an SMS too long to arrive whole, medical
advice, promises of money or results, another person's data, links off the studio's own
domains, an unfilled placeholder, and a marketing text without its opt-out wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

MAX_SMS_SEGMENTS = 2
# Purposes that are marketing rather than service: an SMS must say how to opt out.
MARKETING = ("re_engagement",)

# GSM 03.38: the basic set costs one unit, the extension table two; anything else is UCS-2.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SafetyContext:
    channel: Literal["SMS", "Email"]
    purpose: str
    client_first_name: str
    allowed_link_domains: tuple[str, ...] = ()  # the studio's own; subdomains too
    other_names: tuple[str, ...] = ()  # the studio's other clients: never named in a draft
    studio_contacts: tuple[str, ...] = ()  # the studio's own phone and email may appear
    requires_opt_out: bool | None = None  # None: SMS for a marketing purpose
    max_sms_segments: int = MAX_SMS_SEGMENTS


@dataclass(frozen=True)
class Verdict:
    ok: bool
    failed: tuple[str, ...]
    details: dict[str, str] = field(default_factory=dict)  # rule → why, for the trainer
    sms_segments: int | None = None


def sms_segments(text: str) -> int:
    """How many SMS parts the text is sent as: GSM-7 160 alone or 153 per part (extension
    characters count twice), else UCS-2 70 alone or 67 per part (emoji count as two)."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units, single, part = sum(2 if c in _GSM_EXTENDED else 1 for c in text), 160, 153
    else:
        units, single, part = len(text.encode("utf-16-le")) // 2, 70, 67
    if units <= single:
        return 1
    return -(-units // part)


def _sms_length(text: str, context: SafetyContext) -> str | None:
    if not text.strip():
        return "the draft is empty"
    if context.channel == "SMS":
        segments = sms_segments(text)
        if segments > context.max_sms_segments:
            return f"{segments} SMS segments (at most {context.max_sms_segments})"
    return None


_MEDICAL = re.compile(
    r"""\b(?:ice|heat|elevate|compress|strap|tape|brace)\s+(?:it|the|your|that)\b
      | \b(?:take|try|use|pop)\s+(?:some\s+|an?\s+)?(?:ibuprofen|advil|tylenol|aspirin|paracetamol
            |acetaminophen|painkillers?|pain\s+killers?|anti[\s-]?inflammator\w*|naproxen|aleve
            |muscle\s+relaxants?|creatine|supplements?|medication|meds)\b
      | \b\d+\s?(?:mg|milligrams?|ml)\b
      | \byou\s+(?:probably|might\s+have|may\s+have|likely|definitely|must\s+have)\s+
          (?:tor[en]|pulled|strained|sprained|broken|fractured|injured|herniated)\b
      | \b(?:it'?s|it\s+is|sounds\s+like|that'?s|probably)\s+(?:just\s+|only\s+|a\s+)*(?:a\s+)?
          (?:sprain|strain|tendinitis|tendonitis|pulled\s+muscle|tear|pinched\s+nerve|bursitis)\b
      | \b(?:train|work|push|stretch|lift|run)\s+(?:through|past)\s+(?:the|your|it|that)?\s*pain\b
      | \bno\s+need\s+to\s+see\s+a\s+(?:doctor|physio|gp)\b
      | \b(?:diagnos\w*|prescri\w*|dosage|dose)\b""",
    re.X | re.I,
)


def _medical_advice(text: str, _: SafetyContext) -> str | None:
    """Trainers are not clinicians: a draft may wish a client well, never treat them."""
    match = _MEDICAL.search(text)
    return f"medical or injury advice: “{match.group().strip()}”" if match else None


_PROMISE = re.compile(
    r"""\b\d+\s?%\s*(?:off|discount)\b|\b(?:discount|coupon|promo(?:tion)?\s+code|voucher)\w*
      | \b(?:free|complimentary|on\s+the\s+house)\s+(?:\w+\s+)?(?:session|class|month|week|pt
            |training|consultation|assessment|pack)s?\b
      | \b(?:refund|money[\s-]back|reimburs|credit\s+your\s+account|waive)\w*
      | \bguarantee\w*|\b(?:you'?ll|you\s+will|you\s+are\s+going\s+to|you'?re\s+going\s+to)\s+
          (?:definitely\s+)?(?:lose|drop|gain|shed|hit|reach)\s+(?:\d|\w+\s+(?:lbs?|kg|pounds|inches))
      | \blose\s+\d+\s?(?:lbs?|kg|pounds|kilos)\b|\b(?:[$£€]\s?\d+)\s+off\b|\bhalf[\s-]price\b""",
    re.X | re.I,
)


def _promise(text: str, _: SafetyContext) -> str | None:
    """Money and results are the owner's to offer, never a draft's."""
    match = _PROMISE.search(text)
    return f"promises money or results: “{match.group().strip()}”" if match else None


_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{6,}\d(?![\w])")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _other_person_data(text: str, context: SafetyContext) -> str | None:
    """A draft goes to one client: no other client's name, no contact details but the studio's."""
    own = {c.casefold() for c in context.studio_contacts}
    own_digits = {_digits(c)[-10:] for c in context.studio_contacts if _digits(c)}
    for email in _EMAIL.findall(text):
        if email.casefold() not in own:
            return f"an email address: {email}"
    for phone in _PHONE.findall(text):
        digits = _digits(phone)
        if len(digits) >= 7 and digits[-10:] not in own_digits:
            return f"a phone number: {phone.strip()}"
    folded = text.casefold()
    for name in context.other_names:
        if len(name.split()) < 2:  # a lone first name is too common to tell people apart
            continue
        if name.casefold() in folded and re.search(rf"\b{re.escape(name)}\b", text, re.I):
            return f"another client's name: {name}"
    return None


_LINK = re.compile(
    r"""(?:https?://|www\.)[^\s<>"']+
      | \b(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|us|uk|info|biz|me|ly|gl|app|link|site|online
            |shop|xyz|gym|fit|fitness|health|club|ai)(?:/[^\s<>"']*)?\b""",
    re.X | re.I,
)


def _host(link: str) -> str:
    host = re.sub(r"^(?:https?://)", "", link, flags=re.I).split("/")[0].split("?")[0]
    return host.rstrip(".,;:!?)").casefold().removeprefix("www.")


def _link(text: str, context: SafetyContext) -> str | None:
    """Links only to the studio's own domains: anything else may be phishing or a typo."""
    allowed = [d.casefold().removeprefix("www.") for d in context.allowed_link_domains]
    for match in _LINK.finditer(_EMAIL.sub(" ", text)):  # an address is not a link
        host = _host(match.group())
        if not host:
            continue
        if not any(host == d or host.endswith("." + d) for d in allowed):
            return f"a link outside the studio's domains: {match.group()}"
    return None


_PLACEHOLDER = re.compile(
    r"""\{\{|\}\}|\{[\w\s.-]*\}|\[\s*(?:insert|client|first|name|your|trainer|date|time|studio
            |link|phone|x+)\b[^\]]*\]|<\s*(?:first|client|name|insert|trainer|date|time)[^>]*>
      | %[sd]\b|\bX{3,}\b|\bTBD\b|\bTODO\b|\blorem\s+ipsum\b|^(?:hi|hey|hello|dear)\s*,""",
    re.X | re.I | re.M,
)


def _placeholder(text: str, _: SafetyContext) -> str | None:
    """A hole left in a template or a model's answer reads as careless, or worse."""
    match = _PLACEHOLDER.search(text)
    return f"an unfilled placeholder: “{match.group().strip()}”" if match else None


_OPT_OUT = re.compile(
    r"\b(?:reply|text|send|respond)\s+[\"'“]?stop[\"'”]?\s+(?:to\s+)?"
    r"(?:opt[\s-]?out|unsubscribe|stop|end|cancel|quit|no\s+longer)",
    re.I,
)


def _opt_out_wording(text: str, context: SafetyContext) -> str | None:
    """Marketing texts must tell the client how to stop them (CTIA, TCPA practice)."""
    required = context.requires_opt_out
    if required is None:
        required = context.channel == "SMS" and context.purpose in MARKETING
    if required and not _OPT_OUT.search(text):
        return "no opt-out wording (e.g. “Reply STOP to opt out”)"
    return None


RULES: dict[str, Callable[[str, SafetyContext], str | None]] = {
    "sms_length": _sms_length,
    "medical_advice": _medical_advice,
    "promise": _promise,
    "other_person_data": _other_person_data,
    "link": _link,
    "placeholder": _placeholder,
    "opt_out_wording": _opt_out_wording,
}


def validate_draft(text: str, context: SafetyContext) -> Verdict:
    """Every rule on one draft: which failed, and why."""
    details = {name: why for name, rule in RULES.items() if (why := rule(text, context))}
    return Verdict(
        ok=not details,
        failed=tuple(details),
        details=details,
        sms_segments=sms_segments(text) if context.channel == "SMS" else None,
    )

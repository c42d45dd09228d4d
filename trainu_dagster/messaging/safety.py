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
from urllib.parse import urlsplit

import phonenumbers
import tldextract

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
    phone_region: str = "US"  # how a number written without +country is read


@dataclass(frozen=True)
class Verdict:
    ok: bool
    failed: tuple[str, ...]
    details: dict[str, str] = field(default_factory=dict)  # rule → why, for the trainer
    sms_segments: int | None = None


def sms_segments(text: str) -> int:
    """How many SMS parts the text is sent as: GSM-7 160 alone or 153 per part (extension
    characters count twice), else UCS-2 70 alone or 67 per part (emoji count as two)."""
    if not text:
        return 0
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units, single, part = sum(2 if c in _GSM_EXTENDED else 1 for c in text), 160, 153
    else:
        units, single, part = len(text.encode("utf-16-le")) // 2, 70, 67
    if units <= single:
        return 1
    return -(-units // part)


# Typography a model (or an owner's editor) likes that is not GSM-7: one curly quote would
# send the whole SMS as UCS-2, at 70 characters a part instead of 160.
_GSM_LOOKALIKES = str.maketrans(
    {"‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"',
     "‟": '"', "″": '"', "–": "-", "—": "-", "‐": "-", "‑": "-", "…": "...", "\u00a0": " ",
     "\u202f": " ", "\u2009": " "}
)  # fmt: skip


def gsm_typography(text: str) -> str:
    """The same words in GSM-7 punctuation (straight quotes, hyphens, three dots)."""
    return text.translate(_GSM_LOOKALIKES)


def _sms_length(text: str, context: SafetyContext) -> str | None:
    if not text.strip():
        return "the draft is empty"
    if context.channel == "SMS":
        segments = sms_segments(text)
        if segments > context.max_sms_segments:
            return f"{segments} SMS segments (at most {context.max_sms_segments})"
    return None


_MEDICAL = re.compile(
    r"""\b(?:ice|elevate|compress)\s+(?:it|that|the|your)\b
      | \b(?:strap|tape|brace|splint|wrap)\s+(?:it|that)\b
      | \b(?:apply|use|put)\s+(?:some\s+)?(?:ice|heat|an?\s+(?:ice|heat)\s+pack|a\s+(?:brace|splint
            |bandage|compression\s+\w+))\b
      | \b(?:take|try|use|pop)\s+(?:some\s+|an?\s+)?(?:ibuprofen|advil|tylenol|aspirin|paracetamol
            |acetaminophen|painkillers?|pain\s+killers?|anti[\s-]?inflammator\w*|naproxen|aleve
            |muscle\s+relaxants?|creatine|supplements?|medication|meds)\b
      | \b\d+\s?(?:mg|milligrams?|ml)\b
      | \byou\s+(?:probably|might\s+have|may\s+have|likely|definitely|must\s+have)\s+
          (?:tor[en]|pulled|strained|sprained|broken|fractured|injured|herniated)\b
      | \b(?:it'?s|it\s+is|sounds\s+like|that'?s|probably)\s+(?:just\s+|only\s+|a\s+)*(?:a\s+)?
          (?:sprain|strain|tendinitis|tendonitis|pulled\s+muscle|tear|pinched\s+nerve|bursitis)\b
      | \b(?:train|work|push|stretch|lift|run)\s+(?:through|past)\s+(?:the|your|it|that)?\s*pain\b
      | \b(?:it'?ll|it\s+will|that'?ll|should)\s+heal\b
      | \b(?:safe|fine|ok(?:ay)?)\s+to\s+(?:train|exercise|lift|run|work\s+out)\s+
          (?:while|with|on|during|through)\b
      | \bno\s+need\s+to\s+see\s+a\s+(?:doctor|physio|gp)\b
      | \b(?:diagnos\w*|prescri\w*|dosage|dose)\b""",
    re.X | re.I,
)


def _medical_advice(text: str, _: SafetyContext) -> str | None:
    """Trainers are not clinicians: a draft may wish a client well, never treat them.
    Coaching cues ("brace your core", "tape your wrists") are training, not treatment."""
    match = _MEDICAL.search(text)
    return f"medical or injury advice: “{match.group().strip()}”" if match else None


# Words after "free" that make it availability ("are you free this week?"), not a gift.
_FREE_AS_IN_TIME = (
    r"this|next|that|on|for|in|at|every|each|all|any|tomorrow|today|tonight|later|from|after"
    r"|before|to|now|then|again|anytime|sometime|whenever|if|or|and|the|mon\w*|tue\w*|wed\w*"
    r"|thu\w*|fri\w*|sat\w*|sun\w*|mornings?|evenings?|afternoons?|weekends?"
)
_PROMISE = re.compile(
    rf"""\b\d+\s?%\s*(?:off|discount)\b|\b(?:discount|coupon|promo(?:tion)?\s+code|voucher)\w*
      | \b(?:free|complimentary)\s+(?!(?:{_FREE_AS_IN_TIME})\b)(?:\w+\s+)?(?:session|class|month
            |week|pt|training|consultation|assessment|pack|trial|intro)s?\b
      | \bon\s+the\s+house\b|\b(?:session|class|month|week|one|it)(?:'s|\s+is|\s+are)\s+on\s+us\b
      | \b(?:refund|money[\s-]back|reimburs|credit\s+(?:your|you|the)\s+(?:account|card)|waive)\w*
      | \b(?:free\s+of\s+charge|no\s+(?:extra\s+)?charge|at\s+no\s+(?:extra\s+)?cost)\b
      | \b(?:won'?t|will\s+not|wont)\s+(?:be\s+)?charg\w*
      | \b(?:we|i)\s+guarantee\b|\bguarantee[ds]?\s+(?:to|you|that|results?|weight)\b
      | \b(?:money[\s-]back|results?)\s+guarantee\w*|\bresults\s+(?:are\s+)?guaranteed\b
      | \b(?:you'?ll|you\s+will|you\s+are\s+going\s+to|you'?re\s+going\s+to)\s+
          (?:definitely\s+|surely\s+|easily\s+)?(?:lose|drop|gain|shed|hit|reach|be\s+down)\s+
          (?:\d|\w+\s+(?:lbs?|kg|pounds|inches|sizes?)\b)
      | \b(?:lose|drop|shed)\s+\d+\s?(?:lbs?|kg|pounds|kilos|inches|sizes?)\s+(?:in|within)\s+
          (?:\d+|a|one|two|three|four|six)\s+(?:days?|weeks?|months?)\b
      | \b(?:[$£€]\s?\d+)\s+off\b|\bhalf[\s-]price\b|\b(?:bogo|two\s+for\s+one|2\s?for\s?1)\b""",
    re.X | re.I,
)


def _promise(text: str, _: SafetyContext) -> str | None:
    """Money and results are the owner's to offer, never a draft's. A goal the client set
    ("Lose 10 lbs") named back to them is not a promise; "you'll lose 10 lbs" is."""
    match = _PROMISE.search(text)
    return f"promises money or results: “{match.group().strip()}”" if match else None


_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")


# Seven digits written together (separators allowed): the least any phone number has.
_DIGIT_RUN = re.compile(r"\d(?:[\s().+-]{0,3}\d){6,}")


def _phone_key(number: phonenumbers.PhoneNumber) -> tuple[int | None, int | None]:
    return number.country_code, number.national_number


def _phones(text: str, region: str) -> list[tuple[str, tuple[int | None, int | None]]]:
    """Real phone numbers in the text, by libphonenumber's matcher (times like 9.00-10.00
    and dates like 12.03.2025 are not numbers); a text without seven digits together skips
    it (the matcher costs a third of a millisecond)."""
    if not _DIGIT_RUN.search(text):
        return []
    matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    return [(m.raw_string, _phone_key(m.number)) for m in matcher]


def _own_phones(contacts: tuple[str, ...], region: str) -> set[tuple[int | None, int | None]]:
    own = set()
    for contact in contacts:
        try:
            own.add(_phone_key(phonenumbers.parse(contact, region)))
        except phonenumbers.NumberParseException:
            continue  # an email address, not a number
    return own


def _other_person_data(text: str, context: SafetyContext) -> str | None:
    """A draft goes to one client: no other client's name, no contact details but the studio's."""
    own = {c.casefold() for c in context.studio_contacts}
    for email in _EMAIL.findall(text):
        if email.casefold() not in own:
            return f"an email address: {email}"
    phones = _phones(text, context.phone_region)
    if phones:
        own_phones = _own_phones(context.studio_contacts, context.phone_region)
        for raw, key in phones:
            if key not in own_phones:
                return f"a phone number: {raw.strip()}"
    folded = text.casefold()
    for name in context.other_names:
        if len(name.split()) < 2:  # a lone first name is too common to tell people apart
            continue
        if name.casefold() in folded and re.search(rf"\b{re.escape(name)}\b", text, re.I):
            return f"another client's name: {name}"
    return None


_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.I)
# A bare host name: dotted labels ending in a letter (not 6.30pm); the public suffix list
# decides whether it is a real domain (ironoak.fit, bit.ly) or prose (e.g., a.m.).
_BARE_HOST = re.compile(r"(?<![\w@.-])(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_][\w-]*[^\W_]", re.I)
_SUFFIXES = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # bundled list, offline


def registered_domain(text: str) -> str | None:
    """`https://www.Example.co.uk/x` → `example.co.uk`; None when it is not a web domain."""
    return _SUFFIXES(text.strip().lower()).top_domain_under_public_suffix or None


def _hosts(text: str) -> list[tuple[str, str]]:
    """(as written, host) for every link: full URLs (userinfo and ports stripped, so
    ironoak.fit@evil.example is evil.example) and bare domains."""
    found = []
    for match in _URL.finditer(text):
        written = match.group().rstrip(".,;:!?)")
        url = written if "://" in written else "http://" + written
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        found.append((written, host.casefold().rstrip(".")))
    rest = _EMAIL.sub(" ", _URL.sub(" ", text))  # an address is not a link
    for match in _BARE_HOST.finditer(rest):
        if _SUFFIXES(match.group()).suffix:
            found.append((match.group(), match.group().casefold()))
    return found


def _link(text: str, context: SafetyContext) -> str | None:
    """Links only to the studio's own domains and their subdomains: anything else may be
    phishing (studio.com.billing-secure.net is billing-secure.net's) or a typo."""
    allowed = [d.casefold().removeprefix("www.") for d in context.allowed_link_domains]
    for written, host in _hosts(text):
        host = host.removeprefix("www.")
        if not host or not any(host == d or host.endswith("." + d) for d in allowed):
            return f"a link outside the studio's domains: {written}"
    return None


_PLACEHOLDER = re.compile(
    r"""\{\{|\}\}|\$?\{\s*[\w\s.-]*\}|\$[^\W\d]\w*|%\(\w+\)[sd]|%[sd]\b|%[^\W\d]\w*%
      | \*\|\w+\|\*|\[\[|\]\]|<<|>>
      | \[\s*[^\W\d_][^\[\]\n]{0,40}\]|<\s*[^\W\d_][\w\s.'-]{0,40}>
      | \bX{3,}\b|\bTB[DC]\b|\bTODO\b|\bFIXME\b|\blorem\s+ipsum\b
      | ^(?:hi|hey|hello|dear)\s*,
      | (?<=\S)[^\S\n]+,|,\s*,|\(\s*\)|\w[^\S\n]{2,}\w
      | \b(?:with|at|on|for|from|by)[^\S\n]+[.!?]""",
    re.X | re.I | re.M,
)
# A missing value printed by code: "Hi None," "with null" (case matters: "None of the..." is prose).
_MISSING_VALUE = re.compile(
    r"(?i:\b(?:hi|hey|hello|dear|with|at|on|for|from|by|to)\s+)(?:None|NULL|null|nil|NaN)\b(?!\s+of\b)"
    r"|\b(?:undefined|NaN|NULL)\b"
)


def _placeholder(text: str, _: SafetyContext) -> str | None:
    """A hole left in a template or a model's answer reads as careless, or worse: template
    syntax of any common kind, a [bracketed] or <angled> slot, a printed None, or a gap
    where a value should be ("booked with , at 6")."""
    match = _PLACEHOLDER.search(text) or _MISSING_VALUE.search(text)
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

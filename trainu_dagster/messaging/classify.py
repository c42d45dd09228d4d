"""Reading a client's inbound message: opt-out, escalation to the owner, and intent.

Transparent rules, no model: every decision traces back to one pattern below.
- Opt-out wins over everything (an opt-out is neither an escalation nor an intent to act on).
  The STOP-family rule lives in `ghl.opt_out`, below both this module and the GHL payload
  parser, which records a STOP reply as an opt-out by the same rule; the normal form and the
  negation every pattern here is read with come from there too.
- An escalation means the owner answers, never a draft. Categories are checked most urgent
  first; a mention negated in its clause ("not injured", "no pain") does not count, except
  self-harm: any mention of it reaches a person.
- Judgement calls, biased towards a human reading the message: muscle soreness ("sore but
  good!") is normal training and never escalates, a sore joint does; pain words escalate
  unless the client calls it good pain ("killer workout, my legs hurt in a good way", "hurts so
  good"); "I want to die" escalates as self-harm even when it is said about a hard session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from trainu_dagster.ghl.opt_out import is_opt_out, mentions, normalize_text

EscalationCategory = Literal[
    "injury", "pain", "illness", "pregnancy", "self_harm", "billing_dispute", "legal_threat"
]
Intent = Literal["confirm", "cancel", "reschedule", "question", "other"]

CRISIS_GUIDANCE = (
    "This message may be about self-harm or suicide. Contact the client yourself now; do not "
    "send an automated or templated reply. If they may be in immediate danger, call the local "
    "emergency number (911 in the US) and never leave them alone: stay with them or keep them "
    "on the line until help arrives. In the US, the 988 Suicide & Crisis Lifeline is free and "
    "open 24/7: call or text 988, or chat at 988lifeline.org. Outside the US, call your local "
    "emergency number or a local crisis line (findahelpline.com lists them by country)."
)


@dataclass(frozen=True, slots=True)
class Classification:
    opt_out: bool
    escalation: EscalationCategory | None
    intent: Intent


# --- escalation ------------------------------------------------------------------------------

# Also what `safety` looks for in a draft that diagnoses ("you probably tore your hamstring").
BODY_PART = (
    r"(?:(?:lower|upper|left|right)\s+)?(?:back|neck|shoulders?|knees?|hips?|ankles?|wrists?"
    r"|elbows?|foot|feet|heels?|toes?|hands?|fingers?|thumbs?|arms?|legs?|hamstrings?|quads?"
    r"|calf|calves|groin|glutes?|chest|ribs?|spine|achilles|acl|mcl|meniscus|rotator\s+cuff"
    r"|muscles?|ligaments?|tendons?|joints?|head)"
)
_JOINT = r"(?:back|neck|shoulders?|knees?|hips?|ankles?|wrists?|elbows?|chest|spine|joints?)"

# Training talk that only looks like a symptom; blanked before the escalation rules read.
_NOT_A_SYMPTOM = re.compile(
    r"""\b(?:hurts?|hurting|aches?|aching|achy|sore|pain)\b[\s,]+(?:but\s+)?(?:[\w']+\s+){0,3}?
          (?:in\s+a\s+good\s+way|so\s+good|the\s+good\s+kind|worth\s+it)\b   # hurts in a good way
      | \bgood\s+(?:kind\s+of\s+)?(?:pain|hurt|ache|sore(?:ness)?)\b       # the good kind of pain
      | \b(?:that|this|it|workout|session|class|playlist|set|pump)(?:'s|s|\s+is|\s+was)
          \s+(?:so\s+|really\s+|super\s+)?sick\b                             # that was sick (slang)
      | \b(?:pain|hurt|ache|soreness|swelling|headache)s?(?:'s|\s+is|\s+has|\s+have|\s+are)?
          \s+(?:\w+\s+)?(?:gone|went\s+away|cleared\s+up|disappeared)\b       # the pain's gone
      | \bsick\s+(?:of|workout|session|class|pump|gains|set|lift)\b""",
    re.X,
)
_SELF_HARM = re.compile(
    r"""\bsui?ci?d\w*                                                  # suicide, suicidal, sucidal
      | \b(?:kill|killing|harm|harming)\s+my\s?self\b|\bself[\s-]?harm\w*
      | \b(?:want|wanna|going|gonna|thinking|thought|urge|tempted)\s+(?:about\s+|of\s+|to\s+)?
          (?:hurt(?:ing)?|cut(?:ting)?)\s+my\s?self\b|\bcutting\s+my\s?self\b
      | \bend(?:ing)?\s+(?:my\s+life|it\s+all)\b|\btake\s+my\s+(?:own\s+)?life\b
      | \b(?:want|wanna|wish\s+i\s+(?:was|were)|ready)\s+(?:to\s+)?(?:die|be\s+dead)\b
      | \bbetter\s+off\s+(?:dead|without\s+me|gone)\b
      | \b(?:no\s+one|nobody|noone)\s+would\s+(?:care|miss\s+me|notice)\b
      | \bfeel\w*\s+(?:[\w']+\s+){0,3}?hopeless\b|\bhopelessness\b          # not "hopeless at"
      | \b(?:don'?t|do\s+not|can'?t)\s+see\s+(?:the\s+|any\s+)?point\s+(?:in|of)\s+
          (?:anything|living|life|going\s+on|any\s+of\s+it)\b
      | \bwhat'?s\s+the\s+point\s+(?:of|in)\s+(?:living|life|anything|going\s+on)\b
      | \bno\s+(?:reason|point)\s+(?:to|in)\s+(?:live|living|going\s+on)\b
      | \b(?:don'?t|do\s+not)\s+want\s+to\s+(?:live|be\s+alive|exist|wake\s+up
            |be\s+here\s+any\s?more)\b
      | \bcan'?t\s+(?:go\s+on|take\s+(?:it|this))\s+(?:like\s+this|any\s?more)\b|\boverdos\w*""",
    re.X,
)
_PREGNANCY = re.compile(
    r"""\bpreg(?:n?[ae]n?[ct]\w*|gers|go|o)\b                       # pregnant, pregnent, preggo
      | \b(?:expecting|having)\s+(?:a\s+baby|twins|our\s+first|my\s+first)\b
      | \bbaby\s+on\s+the\s+way\b
      | \b(?:i'?m|i\s+am|we'?re|we\s+are)\s+(?:\w+\s+)?expecting\s*(?:[.!,;]|again\b|$)
      | \btrimester\b|\bmiscarr\w*|\bmorning\s+sickness\b
      | \b(?:post|pre|ante)[\s-]?(?:partum|natal)\b
      | \bgave\s+birth\b|\bjust\s+had\s+(?:a|my|the|our)\s+baby\b|\bc[\s-]?section\b|\bivf\b""",
    re.X,
)
_INJURY = re.compile(
    rf"""\binjur\w*|\bsprain\w*|\bstrain(?:ed|ing|s)?\b|\bfractur\w*|\bdislocat\w*|\bconcuss\w*
      | \bwhiplash\b|\bherniat\w*|\b(?:slipped|bulging)\s+dis[ck]\b
      | \b(?:tend[io]n+itis|tendinopathy|bursitis|fasciitis|arthritis)\b
      | \b(?:pulled|tore|torn|tear|ruptured?|broke|broken|twisted|rolled|jammed|tweaked|popped
            |hurt|bruised|damaged|cracked)\s+(?:(?:my|a|the|his|her)\s+)?(?:\w+\s+)?{BODY_PART}\b
      | \b(?:pulled|tweaked|tore|popped|hurt)\s+(?:something|my\s?self)\b   # pulled something
      | \b(?:threw|thrown|throw|put)\s+(?:out\s+my\s+{BODY_PART}|my\s+{BODY_PART}\s+out)\b
      | \b(?:had|took)\s+a\s+(?:bad\s+)?(?:fall|tumble)\b|\bfell\s+(?:over|down|off)\b
      | \bon\s+crutches\b|\bin\s+a\s+(?:cast|sling|brace)\b|\bstitches\b
      | \bsurgery\b|\bphysio\w*|\bphysical\s+therap\w*|\bchiro\w*|\bswell(?:ing|ed)\b|\bswollen\b
      | \bbruis\w*""",
    re.X,
)
_ILLNESS = re.compile(
    r"""\bsick(?:ness)?\b|\bunwell\b|\billness\b
      | \b(?:feel|feeling|felt|been|am|i'm|im|got|getting|fell|so|very|really|quite|too
            |still)\s+ill\b
      | \b(?:flu|influenza|covid\w*|coronavirus|fever\w*|vomit\w*|puk(?:e|ed|ing)|nause\w*
            |diarrh?o?ea|migraines?|headaches?|dizz\w*|light[\s-]?headed)\b
      | \bthr(?:ew|owing|own)\s+up\b|\bfood\s+poisoning\b|\bstomach\s+(?:bug|flu|virus)\b
      | \b(?:a|high|running\s+a)\s+temp(?:erature)?\b
      | \b(?:caught|catching|got|have|has|had|with|fighting)\s+a\s+(?:bad\s+|nasty\s+|horrible\s+
            |heavy\s+|stinking\s+)?cold\b(?!\s+(?:shower|plunge|drink|water|brew|bath))
      | \b(?:head|chest)\s+cold\b
      | \b(?:faint(?:ed|ing)?|pass(?:ed)?\s+out|black(?:ed)?\s+out)\b
      | \b(?:infection|virus|bronchitis|pneumonia|strep|tonsillitis|shingles|asthma|diabet\w*
            |cancer|chemo\w*|anaemi\w*|anemi\w*|palpitations?)\b
      | \bheart\s+(?:attack|condition|problem|issue)s?\b|\bblood\s+pressure\b
      | \b(?:hospital\w*|a&e|emergency\s+room|urgent\s+care|diagnos\w*|antibiotics|medication)\b
      | \b(?:doctor|gp|dr)\s+(?:said|says|told)\b|\bunder\s+the\s+weather\b
      | \b(?:come|coming|came)\s+down\s+with\b
      | \bfeel(?:ing)?\s+(?:awful|terrible|rough|horrible|like\s+(?:crap|death|garbage))\b""",
    re.X,
)
_PAIN = re.compile(
    rf"""\bpain(?:s|ful|fully)?\b|\bhurt(?:s|ing)?\b|\b(?:ache|aches|aching|achy)\b
      | \b(?:back|stomach|tummy|tooth|ear)aches?\b|\b(?:numb(?:ness)?|tingl\w*|throbb\w*)\b
      | \bpins\s+and\s+needles\b
      | \b{BODY_PART}(?:'s|'re|\s+(?:is|are|has\s+been|have\s+been|been))\s+(?:\w+\s+)?
          killing\s+me\b
      | \bsore\s+{_JOINT}\b|\b{_JOINT}(?:'s|\s+(?:is|are|feels?|feeling|still))\s+(?:\w+\s+)?sore\b
      | \bcan'?t\s+(?:walk|move|bend|straighten|put\s+weight|lift\s+my)\b
      | \bflar(?:e|es|ed|ing)[\s-]?ups?\b
      | \b{_JOINT}(?:'s|\s+(?:is|are|has\s+been|keeps))\s+acting\s+up\b""",
    re.X,
)
_LEGAL_THREAT = re.compile(
    r"""\b(?:lawyers?|attorneys?|solicitors?|lawsuits?|legal\s+action|small\s+claims
            |cease\s+and\s+desist|trading\s+standards|better\s+business\s+bureau|bbb)\b
      | \b(?:to|in)\s+court\b
      | \bsu(?:e|ing)\s+(?:you|u|the\s+studio|your|them|this\s+(?:place|studio|gym))\b
      | \b(?:i'?ll|i\s+will|i'?m\s+going\s+to|gonna|we'?ll|we\s+will|going\s+to)\s+sue\b
      | \bsuing\b|\bsued\b|\bnegligen\w*|\bliab(?:le|ility)\b
      | \breport(?:ing)?\s+(?:you|this|the\s+studio)\s+to\b""",
    re.X,
)
_BILLING_DISPUTE = re.compile(
    r"""\b(?:charged|billed|debited)\s+(?:me\s+)?(?:twice|double|two\s+times|2x|again|wrong(?:ly)?
            |incorrectly|by\s+mistake)\b
      | \bdouble[\s-]?(?:charged|billed|charge|payment)\b|\bover[\s-]?charg\w*
      | \brefund\w*|\bmoney\s+back\b|\bcharge[\s-]?backs?\b|\bdisput\w*|\bunauthori[sz]ed\b
      | \b(?:didn'?t|did\s+not|never)\s+(?:authori[sz]e|agree\s+to|sign\s+up\s+for)\b
      | \b(?:still|keep|kept|keeps)\s+(?:being\s+|getting\s+)?(?:charg|bill)\w*
      | \b(?:charged|billed)\b[^.!?]{0,50}?\bi\s+(?:had\s+|already\s+)?(?:cancel\w*
            |didn'?t\s+(?:use|attend|book)|never\s+(?:used|attended|booked))
      | \bshould(?:n'?t|\s+not)\s+have\s+been\s+(?:charged|billed)\b
      | \b(?:call|calling|contact|contacting|told|tell)\s+my\s+(?:bank|card\s+company)\b
      | \bwhy\s+(?:was|am|have|did)\s+i\s+(?:been\s+|get\s+)?(?:charged|billed)\b
      | \bwrong\s+(?:amount|charge)\b""",
    re.X,
)
# Most urgent first: the first category the message mentions is the one the owner sees.
_ESCALATIONS: tuple[tuple[EscalationCategory, re.Pattern[str]], ...] = (
    ("self_harm", _SELF_HARM),
    ("pregnancy", _PREGNANCY),
    ("injury", _INJURY),
    ("illness", _ILLNESS),
    ("pain", _PAIN),
    ("legal_threat", _LEGAL_THREAT),
    ("billing_dispute", _BILLING_DISPUTE),
)


def _escalation(text: str) -> EscalationCategory | None:
    text = _NOT_A_SYMPTOM.sub(" ", text)
    return next(
        (
            category
            for category, pattern in _ESCALATIONS
            if mentions(pattern, text, negatable=category != "self_harm")
        ),
        None,
    )


# --- intent ----------------------------------------------------------------------------------

_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)\w*"
_RESCHEDULE = re.compile(
    rf"""\bre-?sc?hed\w*|\b(?:move|push|shift|bump)\s+(?:it|this|that|my|our|the|us|me|to|back)\b
      | \bbring\s+(?:it|this|that|my|our|the)\s+forward\b
      | \b(?:different|another|other|later|earlier|new)\s+(?:time|day|slot|date)\b
      | \bchange\s+(?:the|my|our)\s+(?:time|day|date|session|booking|appointment)\b
      | \b(?:swap|switch)\s+(?:to|it|my|our|the|days|times)\b
      | \b(?:\d+(?::\d\d)?\s*(?:am|pm)?|{_DAY}|tomorrow|later)\s+instead\b
      | \b(?:can|could)\s+(?:we|i)\s+(?:do|come|make\s+it|try)\s+(?:\w+\s+)?
          (?:\d|{_DAY}|tomorrow|tmrw|later|earlier|next)""",
    re.X,
)
_CANCEL = re.compile(
    r"""\bcanc(?:el|le)(?!l?ation)\w*|\bcall(?:ing)?\s+(?:it\s+)?off\b
      | \b(?:can'?t|cannot|can\s+not|won'?t\s+be\s+able\s+to|unable\s+to
            |not\s+(?:going\s+to|gonna)\s+(?:be\s+able\s+to\s+)?)\s*(?:make|come|attend)\b
      | \bwon'?t\s+(?:make\s+it|be\s+(?:there|in|coming))\b
      | \b(?:have|need|got)\s+to\s+(?:skip|miss)\b|\bgotta\s+(?:skip|miss)\b""",
    re.X,
)
_QUESTION = re.compile(
    r"""\?|^(?:what|what's|whats|when|where|why|how|who|which|does|did|is|are|can|could
         |should|do\s+(?:i|we|you))\b(?!'t)""",  # not "can't wait"
    re.X,
)
_CONFIRM = re.compile(
    r"""^(?:yes|yep|yup|yeah|yea|ya|y|sure|ok|okay|k|kk|perfect|great|deal|absolutely|definitely
          |of\s+course|will\s+do|done)\b
      | \bsee\s+(?:you|ya|u)\b|\bcya\b|\b(?:i'?ll|will|i\s+will)\s+be\s+there\b
      | \bconfirm(?:ed|ing)?\b
      | \bcount\s+me\s+in\b|\b(?:that|it)\s+works\b|\bworks\s+for\s+me\b
      | \bsounds\s+(?:good|great|perfect)\b|\blooking\s+forward\b|\U0001f44d|\u2705|\U0001f44c""",
    re.X,
)
# A reply that moves a session also cancels the old time: reschedule is read before cancel,
# and both before a question ("can I cancel?") or a confirmation ("ok, can we move it?").
_INTENTS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    ("reschedule", _RESCHEDULE),
    ("cancel", _CANCEL),
    ("question", _QUESTION),
    ("confirm", _CONFIRM),
)


def _intent(text: str) -> Intent:
    return next((intent for intent, pattern in _INTENTS if mentions(pattern, text)), "other")


def classify_inbound(text: str) -> Classification:
    """How TrainU reads a client's reply: an opt-out suppresses everything, an escalation goes
    to the owner instead of a draft, and the intent decides what a draft (if any) answers."""
    if is_opt_out(text):
        return Classification(opt_out=True, escalation=None, intent="other")
    plain = normalize_text(text)
    return Classification(opt_out=False, escalation=_escalation(plain), intent=_intent(plain))

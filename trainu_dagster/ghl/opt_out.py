"""Whether a client's reply withdraws consent to messages: the STOP family, read one way.

US carriers (CTIA's messaging principles) and the TCPA make an SMS sender honour STOP,
STOPALL, UNSUBSCRIBE, CANCEL, END and QUIT at once, and GHL does so itself: it puts the
contact under DND and confirms. TrainU also honours an opt-out said in the client's own words
("please stop texting me"), which GHL does not act on.

It lives here, at the bottom of the flow, because two layers must agree on it: the GHL
payload parser records a STOP reply as an opt-out the moment it arrives, and messaging's
classifier reads every reply with the same rule (and the same normal form and negation, so a
reply means one thing throughout). Standard library only: `trainu messages classify` loads it.

- The carrier keywords count only as the whole reply (case, punctuation, emoji and "please"
  tolerated), so "cancel" is an opt-out and "cancel my session tomorrow" is not.
- Clear sentences ("please stop texting me", "take me off your list") count wherever they
  appear, unless negated ("please don't stop texting me reminders"). A bare "Stop." sentence
  opts out even with more text after it ("Stop. Who is this?"), as do "wrong number" and
  "leave me alone": a missed opt-out is worse than a lost reminder.
"""

from __future__ import annotations

import re

_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'", "\u201c": '"', "\u201d": '"'}
)


def normalize_text(text: str) -> str:
    """Casefolded, curly quotes straightened, whitespace collapsed: the one form every rule
    reads, so "Don’t" and "DONT  " meet the same pattern."""
    return " ".join(text.translate(_QUOTES).casefold().split())


# --- negation --------------------------------------------------------------------------------

_CLAUSE_BREAK = re.compile(r"[.!?;,:\n]|\s[-\u2013\u2014]\s|\b(?:but|though|although|however)\b")
# "not" and friends negate up to three words ahead ("don't have any pain"), but not a hedge
# ("not sure if I pulled something"); "no"/"without"/"nothing" only the next word or two
# ("no real pain", "nothing hurts").
# "can't" is no negation here: "I can't handle the pain" is pain.
_NEGATED = re.compile(
    r"""(?:\b(?:not|never|(?:do|does|did|is|are|was|were|have|has|had|wo|would|should)n'?t)\s+
           (?!(?:sure|certain|know|think|believe|remember)\b)(?:[\w']+\s+){0,3}
         | \b(?:no|without|zero|nothing)\s+(?:[\w']+\s+)?)$""",
    re.X,
)


def _negated(text: str, start: int) -> bool:
    """Whether the clause before `start` negates what follows it ("I'm not injured")."""
    return _NEGATED.search(_CLAUSE_BREAK.split(text[:start])[-1]) is not None


def mentions(pattern: re.Pattern[str], text: str, *, negatable: bool = True) -> bool:
    """Whether `text` says what `pattern` describes at least once without negating it."""
    return any(not (negatable and _negated(text, m.start())) for m in pattern.finditer(text))


# --- opt-out ---------------------------------------------------------------------------------

# The carrier keywords (CTIA) and their usual variants ("unsub", "opt-out", "stop all").
_KEYWORD = r"(?:stop\s?all|stop|unsub\w*|canc(?:el|le)|end|quit|revoke|opt\s?out|remove\s+me)"
_POLITE = r"(?:please|pls|plz|thanks|thank\s+you|thx)"
_KEYWORD_REPLY = re.compile(rf"(?:{_POLITE}\s+)?{_KEYWORD}(?:\s+{_KEYWORD})*(?:\s+{_POLITE})?")
_NOT_A_WORD = re.compile(r"[\W_]+")

_CONTACTING = (
    r"(?:texting|txting|texing|messaging|msging|contacting|e-?mailing|sending|calling"
    r"|spamming|bothering|harr?ass?ing)"
)
_MESSAGES = (
    r"(?:texts?|txts?|messages?|msgs?|e-?mails?|sms|notifications?|reminders?|marketing|spam)"
)
_OPT_OUT_SENTENCE = re.compile(
    rf"""
      \b(?:stop|quit|cease)\s+(?:\w+\s+)?{_CONTACTING}\b                 # stop texting me
    | \bstop\s+(?:all\s+|the\s+|these\s+|your\s+|this\s+)?{_MESSAGES}\b  # stop the texts
    | \bno\s+more\s+{_MESSAGES}\b                                        # no more messages
    | \b(?:don'?t|do\s+not|never)\s+(?:ever\s+)?(?:text|txt|message|msg|contact|e-?mail|sms)
        \s+(?:me|us|this\s+number)(?:\s+(?:again|any\s?more|ever|please|pls))*
        (?=\s*(?:[.!?,;]|$))                     # don't message me again (not: ... before 9)
    | \b(?:take|remove|delete|drop|get)\s+(?:me|my\s+(?:number|name|e-?mail|details|info))
        \s+(?:off|from|out\s+of)\s+(?:\w+\s+){{0,2}}
        (?:list|lists|database|system|contacts|newsletter|{_MESSAGES})\b  # take me off your list
    | \b(?:unsub\w*|opt(?:ing)?[\s-]?(?:me\s+)?out)\b                      # unsubscribe me
        (?!\s+of\s+(?!(?:(?:all|the|these|this|your|any|future)\s+)?
                      (?:{_MESSAGES}|list|mailing|newsletter|everything)\b))  # not: of a class
    | ^(?:please\s+)?stop\s+(?:it|now|immediately|already|asap)\b          # stop it / stop now
    | (?:^|[.!?]\s*)(?:please\s+)?(?:stop|stop\s?all|unsubscribe|opt[\s-]?out)(?:\s+please)?
        \s*(?:[.!?]|$)                              # "Stop. Who is this?" (not cancel/end)
    | \b(?:done\s+with|sick\s+of|tired\s+of|fed\s+up\s+with|had\s+enough\s+of)\s+
        (?:all\s+)?(?:these|your|the|this|those)\s+{_MESSAGES}\b   # sick of these texts
    | \b(?:leave\s+me\s+alone|lose\s+my\s+number|delete\s+my\s+number)\b
    | \bwrong\s+(?:number|person)\b                                   # not the client at all
    """,
    re.X,
)


def is_opt_out(text: str) -> bool:
    """Whether the client withdraws consent to messages: a STOP-family keyword as the whole
    reply, or a clear sentence asking for no more messages."""
    plain = normalize_text(text)
    words = _NOT_A_WORD.sub(" ", plain).strip()
    return bool(_KEYWORD_REPLY.fullmatch(words)) or mentions(_OPT_OUT_SENTENCE, plain)


# The keywords carriers and GHL act on themselves (DND on, and their own confirmation).
CARRIER_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})


def is_carrier_keyword(text: str) -> bool:
    """Whether the reply is a bare carrier opt-out keyword ("STOP"), which GHL answers
    itself; TrainU confirms only the opt-outs it recognised in the client's own words."""
    return _NOT_A_WORD.sub("", normalize_text(text)) in CARRIER_KEYWORDS

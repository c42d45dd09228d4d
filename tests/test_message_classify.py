"""Reading client replies: STOP-family opt-outs, escalations for a person, and intent,
including replies that merely contain "stop" or "cancel" in another sense."""

from __future__ import annotations

import pytest

from trainu_dagster.ghl.opt_out import is_carrier_keyword, is_opt_out
from trainu_dagster.messaging.classify import CRISIS_GUIDANCE, classify_inbound

OPT_OUTS = [
    "stop", "STOP", "Stop.", "quit", "end", "revoke", "opt out", "Opt-out", "cancel", "CANCEL",
    "unsubscribe", "stop all", "Unsubscribe please", "STOP 🛑", "Stop!!!",
    "please stop texting me", "take me off your list", "don't text me again",
    "No more texts please", "STOP TEXTING ME", "can you stop sending me these messages",
]  # fmt: skip
NOT_OPT_OUTS = [
    ("I need to cancel tomorrow's session", "cancel"),
    ("I can't stop thinking about that workout", "other"),
    ("see you at the end of the week", "confirm"),
    ("don't stop the reminders, they help", "other"),
    ("Stop by at 5?", "question"),
    ("I'd like to cancel my 6pm please", "cancel"),
]
ESCALATIONS = [
    ("I think I tweaked my lower back deadlifting", "injury"),
    ("I rolled my ankle playing soccer", "injury"),
    ("sharp pain in my knee when I squat", "pain"),
    ("my shoulder has been hurting since Tuesday", "pain"),
    ("I've got the flu, can't make it", "illness"),
    ("feeling sick today, throwing up", "illness"),
    ("I'm pregnant! Can I still train?", "pregnancy"),
    ("sometimes I think about killing myself", "self_harm"),
    ("I don't want to be here anymore", "self_harm"),
    ("you charged me twice this month", "billing_dispute"),
    ("I want a refund for the sessions I didn't use", "billing_dispute"),
    ("I'm talking to my lawyer about this", "legal_threat"),
    ("I'll sue you if my back doesn't get better", "legal_threat"),
]
ORDINARY = [
    "sore but good!", "killer workout, legs hurt in a good way", "running late, be there in 10",
    "no pain at all, feeling great", "I'm not injured, just busy", "thanks!", "Yes",
]  # fmt: skip


@pytest.mark.parametrize("text", OPT_OUTS)
def test_stop_family_replies_are_opt_outs_not_escalations(text: str) -> None:
    verdict = classify_inbound(text)
    assert is_opt_out(text) and verdict.opt_out and verdict.escalation is None


@pytest.mark.parametrize(("text", "intent"), NOT_OPT_OUTS)
def test_stop_or_cancel_in_another_sense_is_no_opt_out(text: str, intent: str) -> None:
    verdict = classify_inbound(text)
    assert (verdict.opt_out, verdict.escalation, verdict.intent) == (False, None, intent)


@pytest.mark.parametrize(("text", "category"), ESCALATIONS)
def test_each_category_escalates(text: str, category: str) -> None:
    verdict = classify_inbound(text)
    assert (verdict.opt_out, verdict.escalation) == (False, category)


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_replies_do_not_escalate(text: str) -> None:
    assert classify_inbound(text).escalation is None and not classify_inbound(text).opt_out


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Confirmed", "confirm"), ("sounds good, see you then", "confirm"), ("👍", "confirm"),
        ("can we move it to thursday?", "reschedule"), ("Can we do Friday instead?", "reschedule"),
        ("Can't make it tomorrow, sorry", "cancel"), ("what should I bring?", "question"),
        ("I have a question about my package", "other"),
    ],
)  # fmt: skip
def test_intent(text: str, intent: str) -> None:
    assert classify_inbound(text).intent == intent


def test_self_harm_always_reaches_a_person_with_the_crisis_line() -> None:
    assert classify_inbound("this workout made me want to die lol").escalation == "self_harm"
    assert "988" in CRISIS_GUIDANCE


# --- more of each, in the words clients use ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["STOP 🙅\u200d♀️", "Stop. Who is this?", "Quit texting me", "unsubscribe me please",
     "Please remove me from your list", "opt me out", "I'm done with these messages",
     "leave me alone", "lose my number", "wrong number", "Cancel.", "  END  "],
)  # fmt: skip
def test_more_opt_outs(text: str) -> None:
    assert classify_inbound(text).opt_out


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("I'll stop by after work", "other"),
        ("I stopped by earlier but you were closed", "other"),
        ("can't wait for tomorrow!", "other"),  # "can't" opens no question
        ("What's the cancellation policy?", "question"),  # asking about it cancels nothing
        ("Don't message me before 9am please", "other"),  # a preference, not an opt-out
        ("I opted out of the 6am class", "other"),
        ("end of the week works for me", "confirm"),
        ("please don't stop my sessions", "other"),
    ],
)
def test_more_replies_that_are_no_opt_out(text: str, intent: str) -> None:
    verdict = classify_inbound(text)
    assert (verdict.opt_out, verdict.escalation, verdict.intent) == (False, None, intent)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I threw my back out lifting the kids", "injury"),
        ("had surgery on my knee last month", "injury"),
        ("my knee is swollen after the run", "injury"),
        ("my hip flares up when I run", "pain"),
        ("My wrist is killing me", "pain"),
        ("I'm fine, nothing hurts except my knee hurts a lot", "pain"),
        ("I have a cold, better skip", "illness"),
        ("I feel dizzy after workouts lately", "illness"),
        ("My doctor said I should take it easy for a couple weeks", "illness"),
        ("I just found out I'm expecting!", "pregnancy"),
        ("we're expecting a baby in March", "pregnancy"),
        ("I've been feeling really down and hopeless lately", "self_harm"),
        ("Nobody would care if I was gone", "self_harm"),
        ("I don't see the point in anything anymore", "self_harm"),
        ("I'm not feeling suicidal today", "self_harm"),  # never negated away
        ("I've been charged for a session I cancelled", "billing_dispute"),
        ("I'm disputing this charge with my bank", "billing_dispute"),
        ("I'll be reporting you to the BBB", "legal_threat"),
    ],
)
def test_more_escalations(text: str, category: str) -> None:
    assert classify_inbound(text).escalation == category


@pytest.mark.parametrize(
    "text",
    ["that class was sick!", "you're killing it with these programs", "in with cold hands lol",
     "I'm sick of skipping sessions, let's get back on track", "Pain's gone, feeling great",
     "my knee doesn't hurt anymore", "I'm fine, nothing hurts", "Not pregnant, just bloated lol",
     "I'm hopeless at burpees lol", "I'm expecting a call at 5 so can we do 6",
     "I'm not going to sue anyone haha", "Super sore today but I feel good", "hurts so good"],
)  # fmt: skip
def test_training_talk_and_negations_do_not_escalate(text: str) -> None:
    verdict = classify_inbound(text)
    assert verdict.escalation is None and not verdict.opt_out


@pytest.mark.parametrize(
    ("text", "bare"),
    [("STOP", True), ("stop.", True), (" Unsubscribe ", True), ("STOPALL", True),
     ("please stop texting me", False), ("Stop it", False), ("no more messages", False)],
)  # fmt: skip
def test_only_a_bare_carrier_keyword_is_left_to_ghl_to_confirm(text: str, bare: bool) -> None:
    assert is_opt_out(text)
    assert is_carrier_keyword(text) is bare

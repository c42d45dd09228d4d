"""The safety validators: each rule fails a draft that breaks it, and only that rule, and
passes realistic clean drafts; SMS segments counted as carriers count them."""

from __future__ import annotations

import pytest

from trainu_dagster.messaging.safety import (
    RULES,
    SafetyContext,
    gsm_typography,
    sms_segments,
    validate_draft,
)

CONTEXT = SafetyContext(
    channel="SMS", purpose="reply", client_first_name="Maya",
    allowed_link_domains=("ironoak.fit",), other_names=("Leo Rivera", "Ana Souza"),
    studio_contacts=("+1 212 555 0101", "hello@ironoak.fit"),
)  # fmt: skip

CLEAN = [
    "Hi Maya, you're booked with Jordan for Thu 3 Dec at 6:30 pm. Reply YES to confirm!",
    "Hi Maya, we missed you today. Everything OK? Reply and we'll find a new time.",
    "Sorry to hear you're sore! Rest up and we'll see you Thursday at 7 a.m.",
    "Great question: bring water and trainers. Book online at https://ironoak.fit/book",
    "Hope you're feeling better soon. Call us on +1 212 555 0101 if easier, e.g. after 5.",
    "Congratulations Maya! You've made it halfway to your goal: Run 5k. Keep it going!",
    "Hi Maya, can you make 6.30pm on Friday instead? Let me know!",
    # what a naive rule would fail: availability, a goal's own title, times and dates,
    # coaching cues, a held spot, prose that looks like a domain or a null
    "Hi Maya, are you free this week? We'd love to get a session in.",
    "Hi Maya, free next Tuesday evening for a session?",
    "Congratulations Maya! You've made it halfway to your goal: Lose 10 lbs. Keep it going!",
    "Saturday's class runs 9.00-10.00, see you there!",
    "Your session on 12.03.2025 is confirmed.",
    "Remember to brace your core on the deadlifts, and tape your wrists for the bench!",
    "Great news, your spot is guaranteed for Thursday at 6.",
    "None of the Thursday slots are left, how about Friday?",
    "Thanks.See you at 7 a.m., e.g. before work!",
    "That's on me, sorry for the mix-up! We're 100% behind you.",
]
VIOLATIONS = [
    ("sms_length", "Hi Maya, " + "we'd love to see you back at the studio this week. " * 8),
    ("sms_length", "   "),
    ("medical_advice", "Sounds like it's just a sprain, ice it and take ibuprofen."),
    ("medical_advice", "You probably pulled your hamstring; stretch through the pain."),
    ("medical_advice", "Take 400 mg before the session and you'll be fine."),
    ("promise", "Come back this week and get 20% off your next pack!"),
    ("promise", "Your next session is a free session on us."),
    ("promise", "We'll refund the missed class, no problem."),
    ("promise", "Stick with it and you're guaranteed to lose 10 lbs by March."),
    ("other_person_data", "Leo Rivera is also coming Thursday, you can pair up!"),
    ("other_person_data", "Text my colleague on +1 415 555 0199 to rebook."),
    ("other_person_data", "Email sam.jones@gmail.com for the schedule."),
    ("link", "Book here: http://bit.ly/3xYz"),
    ("link", "See the timetable at www.othergym.com/timetable"),
    ("link", "Details on ironoak-deals.com/vip"),
    ("placeholder", "Hi {{ first_name }}, see you soon!"),
    ("placeholder", "Hi [Client Name], see you Thursday!"),
    ("placeholder", "Hi , your session is at <time>."),
    ("placeholder", "Your session is on TBD."),
    ("medical_advice", "Ice it tonight and it'll heal by Monday."),
    ("medical_advice", "It's fine to train while pregnant, just go lighter."),
    ("medical_advice", "Brace it and apply heat twice a day."),
    ("promise", "Come back in January and next month is on the house!"),
    ("promise", "Your next session is on us."),
    ("promise", "We won't charge you for the missed session."),
    ("promise", "Join now for a free trial class this week."),
    ("promise", "Keep this up and you'll lose 5 kg by summer."),
    ("other_person_data", "Call Jordan on (415) 555-0199."),
    ("other_person_data", "Ring Sam on +44 7911 123456 to swap."),
    ("link", "Pay here: ironoak.fit.billing-secure.top/pay"),
    ("link", "Confirm at https://studio.com.billing-secure.net/login"),
    ("link", "Check ironoak.fit.co/deals"),
    ("placeholder", "Hi None, see you Thursday!"),
    ("placeholder", "Hi ${first_name}, see you Thursday!"),
    ("placeholder", "See you at [Location] on Thursday!"),
    ("placeholder", "You're booked with , at 6pm Thursday."),
    ("placeholder", "You're booked with  for Thursday."),
    ("placeholder", "Hi *|FNAME|*, see you soon."),
    ("placeholder", "Your trainer undefined will see you Friday."),
]


@pytest.mark.parametrize("text", CLEAN)
def test_realistic_clean_drafts_pass(text: str) -> None:
    verdict = validate_draft(text, CONTEXT)
    assert verdict.ok, verdict.details
    assert verdict.failed == () and verdict.sms_segments == sms_segments(text)


@pytest.mark.parametrize(("rule", "text"), VIOLATIONS)
def test_each_rule_fails_the_draft_that_breaks_it_and_only_it(rule: str, text: str) -> None:
    verdict = validate_draft(text, CONTEXT)
    assert verdict.failed == (rule,), verdict.details
    assert not verdict.ok and verdict.details[rule]


def test_opt_out_wording_is_required_where_the_channel_and_purpose_need_it() -> None:
    invite = "Hi Maya, we haven't seen you in a while. Fancy a session this week?"
    marketing = SafetyContext(channel="SMS", purpose="re_engagement", client_first_name="Maya")
    assert validate_draft(invite, marketing).failed == ("opt_out_wording",)
    assert validate_draft(invite + " Reply STOP to opt out.", marketing).ok
    assert validate_draft(invite + " Text STOP to unsubscribe.", marketing).ok
    email = SafetyContext(channel="Email", purpose="re_engagement", client_first_name="Maya")
    assert validate_draft(invite, email).ok  # email carries its own unsubscribe footer
    forced = SafetyContext(channel="SMS", purpose="reply", client_first_name="Maya",
                           requires_opt_out=True)  # fmt: skip
    assert validate_draft(invite, forced).failed == ("opt_out_wording",)


def test_a_link_is_judged_by_the_host_it_really_opens() -> None:
    # userinfo before the @ is not the host: this opens evil.example
    verdict = validate_draft("Pay at https://ironoak.fit@evil.example/pay", CONTEXT)
    assert "link" in verdict.failed, verdict.details
    assert validate_draft("Book at https://ironoak.fit:443/book?x=1.", CONTEXT).ok


def test_the_studios_own_number_may_appear_in_any_format() -> None:
    for written in ("+1 212 555 0101", "(212) 555-0101", "212.555.0101"):
        assert validate_draft(f"Call us on {written} to move it.", CONTEXT).ok, written
    uk = SafetyContext(channel="SMS", purpose="reply", client_first_name="Maya",
                       phone_region="GB")  # fmt: skip
    assert validate_draft("Ring 07911 123456 to swap.", uk).failed == ("other_person_data",)


def test_links_to_the_studio_and_its_subdomains_pass() -> None:
    for text in ("Book: https://ironoak.fit/book", "See book.ironoak.fit", "www.ironoak.fit"):
        assert validate_draft(text, CONTEXT).ok, text
    no_domains = SafetyContext(channel="Email", purpose="reply", client_first_name="Maya")
    assert validate_draft("Book: https://ironoak.fit/book", no_domains).failed == ("link",)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
        ("€" * 80, 1), ("€" * 81, 2),  # an extension character counts twice
        ("é" * 160, 1),  # in the GSM basic set
        ("ą" * 70, 1), ("ą" * 71, 2), ("ą" * 134, 2), ("ą" * 135, 3),  # UCS-2
        ("💪" * 35, 1), ("💪" * 36, 2),  # an emoji is two UTF-16 units
    ],
)  # fmt: skip
def test_sms_segments_count_as_carriers_do(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def test_an_empty_text_is_no_segments_and_fails_the_length_rule() -> None:
    assert sms_segments("") == 0
    assert validate_draft("", CONTEXT).failed == ("sms_length",)


def test_gsm_typography_keeps_a_curly_text_in_one_segment() -> None:
    curly = "Hi Maya, you’re booked – “Thursday” at 6… " * 2 + "See you!"
    assert sms_segments(curly) == 2  # one curly quote makes it UCS-2, 70 a part
    plain = gsm_typography(curly)
    assert plain.startswith('Hi Maya, you\'re booked - "Thursday" at 6... ')
    assert sms_segments(plain) == 1


def test_an_emoji_turns_a_long_text_into_more_segments() -> None:
    text = "Hi Maya, great session today! " * 4
    assert sms_segments(text) == 1 and sms_segments(text + "💪") == 2
    assert set(RULES) == {"sms_length", "medical_advice", "promise", "other_person_data",
                          "link", "placeholder", "opt_out_wording"}  # fmt: skip

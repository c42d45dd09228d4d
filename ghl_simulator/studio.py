"""One simulated studio: GHL's view of a personal-training business, and the ground truth.

The generator builds a believable history (recurring sessions with shows, no-shows, late
cancellations and reschedules; reminders and replies; a sales pipeline) deterministically
from a seed. Clients churn the ways real ones do (`Churn`: fading out, stopping at once,
taking a break, or staying), recorded in the ground truth so backtests can be judged.
Every later change goes through a mutation that stamps `dateUpdated` and appends to an
append-only change log, so tests can compare what TrainU stored with what happened and
the webhook sender knows what to announce. Records are kept in GHL's REST shape, keyed by
entity kind. Clients' goals and goal entries are TrainU's own data (trainers record them in
TrainU, not GHL), so they live beside `entities`, in the app tables' shape, and are never served.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import random
import re
import string
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from faker import Faker

Record = dict[str, Any]
ChangeKind = Literal["create", "update", "delete"]
Entity = Literal["contact", "appointment", "conversation", "message", "opportunity"]
ENTITIES: tuple[Entity, ...] = ("contact", "appointment", "conversation", "message", "opportunity")
# Bookkeeping the simulator keeps on records that GHL's API never shows.
INTERNAL_FIELDS = frozenset({"deleted", "rescheduledFrom", "trajectory"})
OPEN_STATUSES = frozenset({"confirmed", "new"})
STAGES = ("lead", "trial", "member", "churned")
OTHER_TIMEZONES = ("America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London")
SOURCES = ("website trial form", "instagram", "referral", "walk-in", "facebook ad")
SESSION_HOURS = (6, 7, 8, 9, 12, 16, 17, 18, 19)
STREETS = ("Broadway", "West 23rd Street", "Lexington Avenue", "Hudson Street", "Bleecker Street")
MESSAGE_TYPES = {"SMS": ("TYPE_SMS", 2), "Email": ("TYPE_EMAIL", 3)}
REMINDERS = (
    "Hi {first}, see you tomorrow! Reply if you need to move it.",
    "Quick check-in {first}: how are you feeling after this week's sessions?",
    "Hi {first}, we missed you today. Want to rebook?",
)
REPLIES = ("Thanks, see you then!", "Can we move it to later?", "Feeling great", "Sore but good")
STOP = "STOP"
GOAL_TYPES = ("body_weight", "strength", "sessions_per_month")
TRAJECTORIES = ("on_track", "stalled", "regressing")
LIFTS = (("Back squat", 16, 56), ("Deadlift", 20, 72), ("Bench press", 12, 40))  # x 2.5 kg
# Per goal type: (unit, days between entries, entry noise +/-, slowest regression per week).
GOAL_SHAPES: dict[str, tuple[str, tuple[int, int], float, float]] = {
    "body_weight": ("kg", (5, 10), 0.3, 0.6),
    "strength": ("kg", (5, 10), 0.75, 2.0),
    "sessions_per_month": ("sessions", (28, 32), 0.0, 0.0),
}
_ID_ALPHABET = string.ascii_letters + string.digits
_ID_BYTES = bytes.maketrans(bytes(range(256)), (_ID_ALPHABET * 5)[:256].encode())
_NOT_NAME = re.compile(r"[^a-z]")


def ghl_id(rng: random.Random) -> str:
    """20 alphanumerics, like GHL's ids (byte translation: fast enough for 10^6 records)."""
    return rng.randbytes(20).translate(_ID_BYTES).decode()


def public(record: Record) -> Record:
    """A record as GHL shows it: without the simulator's own bookkeeping fields."""
    return {k: v for k, v in record.items() if k not in INTERNAL_FIELDS}


def iso_utc(moment: datetime) -> str:
    """GHL's UTC timestamps: `2026-08-01T14:03:11.123Z`."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def epoch_ms(value: str | datetime) -> int:
    if isinstance(value, str):
        return _iso_epoch_ms(value)
    return int(value.timestamp() * 1000)


@lru_cache(maxsize=1 << 20)
def _iso_epoch_ms(value: str) -> int:
    """Listings sort every record by time on each request; parsing the same stored ISO
    strings again was most of the simulator's CPU."""
    return int(datetime.fromisoformat(value).timestamp() * 1000)


@dataclass(frozen=True)
class Change:
    """One entry of the change log; `record` is the entity as it was right after the change."""

    entity: Entity
    entity_id: str
    kind: ChangeKind
    at: datetime
    event_type: str
    record: Record = field(repr=False, compare=False)


ChurnKind = Literal["steady", "fade", "sudden", "pause"]


@dataclass(frozen=True)
class Churn:
    """Whether and how a client drifts away, as a latent engagement (0..1) over time.

    Engagement is what real clients lose: it decides whether a weekly slot gets booked at
    all and how reliably a booked session is kept. `fade` declines along a curve from
    `onset` to `until` (then stops), `sudden` stops at `until` with no warning (a move, a
    new job), `pause` is away from `onset` to `until` and comes back, `steady` never
    drifts. Nothing here mirrors the risk score's rules: those have to find the drift
    from the bookings it leaves behind."""

    kind: ChurnKind
    onset: datetime | None = None
    until: datetime | None = None
    shape: float = 1.0  # a fade's curvature: < 1 drops early, > 1 holds on then drops

    def engagement(self, at: datetime) -> float:
        if self.kind == "steady" or self.until is None:
            return 1.0
        if self.kind == "sudden" or self.onset is None:
            return 1.0 if at < self.until else 0.0
        if at < self.onset:
            return 1.0
        if self.kind == "pause":
            return 0.0 if at < self.until else 1.0
        if at >= self.until:
            return 0.0
        return float((1 - (at - self.onset) / (self.until - self.onset)) ** self.shape)

    def record(self, contact_id: str) -> Record:
        """The ground truth's view: what happened to this client and when."""
        return {
            "contactId": contact_id,
            "kind": self.kind,
            "onset": iso_utc(self.onset) if self.onset else None,
            "until": iso_utc(self.until) if self.until else None,
        }


STEADY = Churn("steady")


@dataclass(frozen=True)
class Profile:
    """How a client behaves: drives generated outcomes and live activity alike."""

    noshow: float
    cancel: float
    skip: float  # an engaged client's chance of leaving a week's slot unbooked
    slots: tuple[tuple[int, int], ...]  # (weekday, local hour)
    churn: Churn = STEADY

    @property
    def at_risk(self) -> bool:
        """Drifting away (or drifted, before stopping): what a trainer should have caught."""
        return self.churn.kind == "fade"

    def books(self, start: datetime) -> float:
        """Probability that the client books the week's slot starting at `start`."""
        return (1 - self.skip) * self.churn.engagement(start)

    def odds(self, start: datetime) -> tuple[float, float, float]:
        """(no-show, cancel, share of cancels that are late) for a session at `start`:
        a disengaging client misses more, cancels more and gives less notice."""
        lapse = 1 - self.churn.engagement(start)
        return (
            self.noshow + 0.3 * lapse,
            self.cancel + 0.2 * lapse,
            0.4 + 0.3 * lapse,
        )


class Studio:
    """The current true state plus the change log; `lock` guards both across threads."""

    def __init__(
        self,
        location: Record,
        users: list[Record],
        calendars: list[Record],
        pipeline: Record,
        now: datetime,
        rng: random.Random,
        faker: Faker,
    ) -> None:
        self.location = location
        self.users = {user["id"]: user for user in users}
        self.calendars = {calendar["id"]: calendar for calendar in calendars}
        self.pipeline = pipeline
        self.now = now
        self.entities: dict[str, dict[str, Record]] = {kind: {} for kind in ENTITIES}
        self.changes: list[Change] = []
        self.profiles: dict[str, Profile] = {}
        # TrainU-side data (app.goals / app.goal_entries shape), never served by the API.
        self.goals: dict[str, Record] = {}
        self.goal_entries: dict[str, Record] = {}
        self.lock = threading.RLock()
        self.revision = 0  # bumped on every write; the API's sorted listings key on it
        self.faker = faker
        self._rng = rng  # ids and names only; behaviour draws from the caller's rng
        self._logging = True
        # Appointments still to happen or be marked: id -> (start ms, end ms).
        self._open: dict[str, tuple[int, int]] = {}
        self._conversation_of: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled to keep the world between simulator runs (`live.StudioKeeper`), as GHL
        keeps a studio; the lock and Faker are made anew on load."""
        state = self.__dict__.copy()
        del state["lock"], state["faker"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()
        self.faker = Faker("en_US")
        self.faker.seed_instance(self._rng.getrandbits(32))

    # --- accessors ---------------------------------------------------------------------

    @property
    def location_id(self) -> str:
        return str(self.location["id"])

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.location["timezone"])

    @property
    def contacts(self) -> dict[str, Record]:
        return self.entities["contact"]

    @property
    def appointments(self) -> dict[str, Record]:
        return self.entities["appointment"]

    @property
    def conversations(self) -> dict[str, Record]:
        return self.entities["conversation"]

    @property
    def messages(self) -> dict[str, Record]:
        return self.entities["message"]

    @property
    def opportunities(self) -> dict[str, Record]:
        return self.entities["opportunity"]

    def calendar_for(self, user_id: str) -> str:
        return str(
            next(
                c["id"] for c in self.calendars.values() if c["teamMembers"][0]["userId"] == user_id
            )
        )

    def conversation_for(self, contact_id: str) -> Record:
        return self.conversations[self._conversation_of[contact_id]]

    def truth(self) -> dict[str, dict[str, Record]]:
        """A deep copy of every entity (deleted ones included, flagged) for comparisons."""
        with self.lock:
            return {
                "location": {self.location_id: copy.deepcopy(self.location)},
                "user": copy.deepcopy(self.users),
                "calendar": copy.deepcopy(self.calendars),
                **{kind: copy.deepcopy(records) for kind, records in self.entities.items()},
                "goal": copy.deepcopy(self.goals),
                "goal_entry": copy.deepcopy(self.goal_entries),
                "churn": {cid: p.churn.record(cid) for cid, p in self.profiles.items()},
            }

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "locationId": self.location_id,
                "now": iso_utc(self.now),
                "counts": {
                    **{kind: len(records) for kind, records in self.entities.items()},
                    "goal": len(self.goals),
                    "goal_entry": len(self.goal_entries),
                },
                "deleted": {
                    kind: sum(1 for r in records.values() if r.get("deleted"))
                    for kind, records in self.entities.items()
                },
                "appointmentStatus": dict(
                    Counter(a["appointmentStatus"] for a in self.appointments.values())
                ),
                "liveAppointmentStatus": dict(
                    Counter(
                        a["appointmentStatus"]
                        for a in self.appointments.values()
                        if not a.get("deleted")
                    )
                ),
                "changes": dict(Counter(c.event_type for c in self.changes)),
                "churn": dict(Counter(p.churn.kind for p in self.profiles.values())),
            }

    # --- the one write path ------------------------------------------------------------

    def new_id(self) -> str:
        """GHL ids are 20 alphanumerics."""
        return ghl_id(self._rng)

    def _record(
        self, entity: Entity, record: Record, kind: ChangeKind, at: datetime, event_type: str
    ) -> Record:
        with self.lock:
            self._store(entity, record)
            if self._logging:
                change = Change(entity, record["id"], kind, at, event_type, copy.deepcopy(record))
                self.changes.append(change)
                self.now = max(self.now, at)
        return record

    def _store(self, entity: Entity, record: Record) -> None:
        self.entities[entity][record["id"]] = record
        self.revision += 1
        if entity != "appointment":
            return
        if record["deleted"] or record["appointmentStatus"] not in OPEN_STATUSES:
            self._open.pop(record["id"], None)
        else:
            self._open[record["id"]] = (epoch_ms(record["startTime"]), epoch_ms(record["endTime"]))

    def _update(
        self,
        entity: Entity,
        entity_id: str,
        at: datetime,
        event_type: str,
        stamp: str = "dateUpdated",
        **fields: Any,
    ) -> Record:
        with self.lock:
            record = self.entities[entity][entity_id]
            record.update(fields, **{stamp: iso_utc(at)})
            kind: ChangeKind = "delete" if fields.get("deleted") else "update"
            return self._record(entity, record, kind, at, event_type)

    # --- contacts ----------------------------------------------------------------------

    def add_contact(self, at: datetime, category: str = "lead", **fields: Any) -> Record:
        """A new contact; fields not given are made up for a `category` (lead, client...)."""
        contact = {
            **contact_fields(self.faker, self._rng, self, category),
            **fields,
            "id": self.new_id(),
            "locationId": self.location_id,
            "dateAdded": iso_utc(at),
            "dateUpdated": iso_utc(at),
        }
        with self.lock:
            self._record("contact", contact, "create", at, "ContactCreate")
            self._add_conversation(contact, at)
        return contact

    def update_contact(self, contact_id: str, at: datetime, **fields: Any) -> Record:
        event = "ContactTagUpdate" if fields.keys() == {"tags"} else "ContactUpdate"
        return self._update("contact", contact_id, at, event, **fields)

    def set_dnd(self, contact_id: str, at: datetime, dnd: bool, reason: str = "") -> Record:
        settings = dnd_settings(dnd, reason or ("Contact replied STOP" if dnd else ""))
        return self._update(
            "contact", contact_id, at, "ContactDndUpdate", dnd=dnd, dndSettings=settings
        )

    def delete_contact(self, contact_id: str, at: datetime) -> Record:
        return self._update("contact", contact_id, at, "ContactDelete", deleted=True)

    # --- appointments ------------------------------------------------------------------

    def book(
        self,
        contact_id: str,
        start: datetime,
        at: datetime,
        *,
        minutes: int = 60,
        status: str = "confirmed",
    ) -> Record:
        with self.lock:
            contact = self.contacts[contact_id]
            appointment = appointment_record(
                self.new_id(),
                contact,
                self.calendar_for(contact["assignedTo"]),
                self.location_id,
                start.astimezone(self.tz),
                minutes,
                status,
                at,
            )
            return self._record("appointment", appointment, "create", at, "AppointmentCreate")

    def set_appointment_status(self, appointment_id: str, at: datetime, status: str) -> Record:
        return self._update(
            "appointment", appointment_id, at, "AppointmentUpdate", appointmentStatus=status
        )

    def cancel(self, appointment_id: str, at: datetime) -> Record:
        return self.set_appointment_status(appointment_id, at, "cancelled")

    def reschedule(self, appointment_id: str, at: datetime, new_start: datetime) -> Record:
        with self.lock:
            appointment = self.appointments[appointment_id]
            start, end = (datetime.fromisoformat(appointment[k]) for k in ("startTime", "endTime"))
            new_start = new_start.astimezone(self.tz)
            return self._update(
                "appointment",
                appointment_id,
                at,
                "AppointmentUpdate",
                startTime=new_start.isoformat(),
                endTime=(new_start + (end - start)).isoformat(),
                rescheduledFrom=appointment["startTime"],
            )

    def delete_appointment(self, appointment_id: str, at: datetime) -> Record:
        return self._update("appointment", appointment_id, at, "AppointmentDelete", deleted=True)

    # --- conversations -----------------------------------------------------------------

    def _add_conversation(self, contact: Record, at: datetime) -> Record:
        conversation = {
            "id": self.new_id(),
            "contactId": contact["id"],
            "locationId": self.location_id,
            "dateAdded": iso_utc(at),
            "dateUpdated": iso_utc(at),
        }
        self.conversations[conversation["id"]] = conversation
        self._conversation_of[contact["id"]] = conversation["id"]
        return conversation

    def add_message(
        self,
        contact_id: str,
        at: datetime,
        body: str,
        *,
        direction: str,
        channel: str = "SMS",
        status: str = "delivered",
        source: str = "app",
    ) -> Record:
        """An inbound reply or an outbound send; an inbound STOP also turns DND on, as GHL does."""
        with self.lock:
            contact = self.contacts[contact_id]
            conversation = self.conversation_for(contact_id)
            conversation["dateUpdated"] = iso_utc(at)
            message = message_record(
                self.new_id(),
                contact,
                conversation["id"],
                at,
                body,
                direction,
                channel,
                status,
                source,
            )
            event = "InboundMessage" if direction == "inbound" else "OutboundMessage"
            self._record("message", message, "create", at, event)
            if direction == "inbound" and body.strip().upper() == STOP and not contact["dnd"]:
                self.set_dnd(contact_id, at, True)
            return message

    # --- opportunities -----------------------------------------------------------------

    def add_opportunity(
        self, contact_id: str, at: datetime, stage: str = "lead", monetary_value: float = 0.0
    ) -> Record:
        with self.lock:
            opportunity = opportunity_record(
                self.new_id(),
                self.contacts[contact_id],
                self.pipeline,
                stage,
                "open",
                monetary_value,
                at,
            )
            return self._record("opportunity", opportunity, "create", at, "OpportunityCreate")

    def update_opportunity(
        self, opportunity_id: str, at: datetime, *, stage: str | None = None, **fields: Any
    ) -> Record:
        """Status and stage moves get their own GHL event types; anything else is an Update."""
        with self.lock:
            current = self.opportunities[opportunity_id]
            stamps = {"lastActionDate": iso_utc(at)}
            event = "OpportunityUpdate"
            if stage is not None and stage_id(self.pipeline, stage) != current["pipelineStageId"]:
                fields["pipelineStageId"] = stage_id(self.pipeline, stage)
                stamps["lastStageChangeAt"] = iso_utc(at)
                event = "OpportunityStageUpdate"
            if "status" in fields and fields["status"] != current["status"]:
                stamps["lastStatusChangeAt"] = iso_utc(at)
                event = "OpportunityStatusUpdate"
            return self._update(
                "opportunity", opportunity_id, at, event, stamp="updatedAt", **fields, **stamps
            )

    def delete_opportunity(self, opportunity_id: str, at: datetime) -> Record:
        return self._update(
            "opportunity", opportunity_id, at, "OpportunityDelete", stamp="updatedAt", deleted=True
        )

    # --- live activity -----------------------------------------------------------------

    def advance(self, rng: random.Random, until: datetime, *, events: int = 0) -> list[Change]:
        """Move the world to `until`: sessions that ended get their outcome, plus `events`
        random happenings (bookings, cancellations, replies, new leads...) spread over the gap.
        Returns the changes made."""
        with self.lock:
            start, first = self.now, len(self.changes)
            if until <= start:
                return []
            self._settle(rng, until)
            for moment in sorted(start + (until - start) * rng.random() for _ in range(events)):
                happen(self, rng, max(moment, self.now))
            self.now = until
            return self.changes[first:]

    def upcoming(self, after: datetime) -> list[str]:
        """Open appointments starting after `after` (sorted, so a seeded rng picks the same)."""
        cutoff = epoch_ms(after)
        return sorted(i for i, (start, _) in self._open.items() if start > cutoff)

    def _settle(self, rng: random.Random, until: datetime) -> None:
        """Trainers mark sessions showed/no-show a few minutes after they end."""
        lag = timedelta(minutes=5)
        cutoff = epoch_ms(until - lag)
        due = sorted((end, i) for i, (_, end) in self._open.items() if end <= cutoff)
        for end, appointment_id in due:
            appointment = self.appointments[appointment_id]
            start = datetime.fromisoformat(appointment["startTime"])
            profile = self.profiles.get(appointment["contactId"])
            noshow = profile.odds(start)[0] if profile else 0.1
            at = max(self.now, datetime.fromtimestamp(end / 1000, UTC) + lag)
            status = "noshow" if rng.random() < noshow else "showed"
            self.set_appointment_status(appointment_id, at, status)


def happen(studio: Studio, rng: random.Random, at: datetime) -> None:
    """One random, plausible thing happening in the studio at `at`."""
    live = [c for c in studio.contacts.values() if not c["deleted"]]
    contact = rng.choice(live)
    upcoming = studio.upcoming(at)
    opportunities = [o for o in studio.opportunities.values() if not o["deleted"]]
    roll = rng.random()
    if roll < 0.18:
        local = (at + timedelta(days=rng.randint(1, 14))).astimezone(studio.tz)
        start = local.replace(hour=rng.choice(SESSION_HOURS), minute=0, second=0, microsecond=0)
        studio.book(contact["id"], start, at)
    elif roll < 0.28 and upcoming:
        studio.cancel(rng.choice(upcoming), at)
    elif roll < 0.34 and upcoming:
        appointment = studio.appointments[rng.choice(upcoming)]
        moved = datetime.fromisoformat(appointment["startTime"]) + timedelta(
            hours=rng.choice((1, 2, 24, 48))
        )
        studio.reschedule(appointment["id"], at, moved)
    elif roll < 0.37 and upcoming:
        studio.delete_appointment(rng.choice(upcoming), at)
    elif roll < 0.52:
        if not contact["dnd"]:
            text = rng.choice(REMINDERS).format(first=contact["firstName"])
            studio.add_message(
                contact["id"],
                at,
                text,
                direction="outbound",
                channel=rng.choice(("SMS", "SMS", "Email")),
            )
    elif roll < 0.66:
        body = STOP if rng.random() < 0.08 else rng.choice(REPLIES)
        studio.add_message(contact["id"], at, body, direction="inbound")
    elif roll < 0.72:
        studio.update_contact(contact["id"], at, email=contact["email"].replace("@", ".new@", 1))
    elif roll < 0.77:
        studio.update_contact(
            contact["id"],
            at,
            tags=[*contact["tags"], rng.choice(("vip", "pt-pack-10", "nutrition"))],
        )
    elif roll < 0.80:
        studio.set_dnd(contact["id"], at, not contact["dnd"], "Set by staff")
    elif roll < 0.87:
        lead = studio.add_contact(at)
        studio.add_opportunity(lead["id"], at, "lead")
    elif roll < 0.96 and opportunities:
        opportunity = rng.choice(opportunities)
        move = rng.random()
        if move < 0.4:
            studio.update_opportunity(opportunity["id"], at, stage=rng.choice(STAGES))
        elif move < 0.75:
            studio.update_opportunity(
                opportunity["id"], at, status=rng.choice(("open", "won", "lost", "abandoned"))
            )
        else:
            studio.update_opportunity(
                opportunity["id"], at, monetaryValue=float(rng.choice((149, 299, 599)))
            )
    elif roll < 0.98 and opportunities:
        studio.delete_opportunity(rng.choice(opportunities)["id"], at)
    else:
        studio.delete_contact(contact["id"], at)


# --- record builders -------------------------------------------------------------------


def dnd_settings(active: bool, reason: str) -> Record:
    status = "active" if active else "inactive"
    return {
        channel: {"status": status, "message": reason, "code": "103" if active else ""}
        for channel in ("SMS", "Email", "Call")
    }


def contact_fields(faker: Faker, rng: random.Random, studio: Studio, category: str) -> Record:
    first, last = faker.first_name(), faker.last_name()
    handle = f"{_NOT_NAME.sub('', first.lower())}.{_NOT_NAME.sub('', last.lower())}"
    tags = {"client": ["client", "pt-pack-10"], "churned": ["client", "churned"]}
    return {
        "firstName": first,
        "lastName": last,
        "name": f"{first} {last}",
        "contactName": f"{first} {last}",
        "email": f"{handle}{rng.randint(1, 999)}@example.com",
        "phone": f"+1{rng.randint(201, 989)}{rng.randint(2000000, 9999999)}",
        "timezone": studio.location["timezone"]
        if rng.random() < 0.85
        else rng.choice(OTHER_TIMEZONES),
        "tags": tags.get(category, ["lead", "trial-request"]),
        "assignedTo": rng.choice(list(studio.users)),
        "dnd": False,
        "type": "lead" if category == "lead" else "customer",
        "source": rng.choice(SOURCES),
        "country": "US",
        "customFields": [],
        "deleted": False,
    }


def appointment_record(
    appointment_id: str,
    contact: Record,
    calendar_id: str,
    location_id: str,
    start: datetime,
    minutes: int,
    status: str,
    at: datetime,
) -> Record:
    stamp = iso_utc(at)
    return {
        "id": appointment_id,
        "calendarId": calendar_id,
        "locationId": location_id,
        "contactId": contact["id"],
        "groupId": "",
        "assignedUserId": contact["assignedTo"],
        "users": [contact["assignedTo"]],
        "title": f"PT session - {contact['name']}",
        "notes": "",
        "appointmentStatus": status,
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(minutes=minutes)).isoformat(),
        "dateAdded": stamp,
        "dateUpdated": stamp,
        "deleted": False,
    }


def message_record(
    message_id: str,
    contact: Record,
    conversation_id: str,
    at: datetime,
    body: str,
    direction: str,
    channel: str,
    status: str,
    source: str,
) -> Record:
    message_type, type_number = MESSAGE_TYPES[channel]
    record = {
        "id": message_id,
        "type": type_number,
        "messageType": message_type,
        "locationId": contact["locationId"],
        "contactId": contact["id"],
        "conversationId": conversation_id,
        "dateAdded": iso_utc(at),
        "dateUpdated": iso_utc(at),
        "body": body,
        "direction": direction,
        "status": status,
        "contentType": "text/plain",
        "attachments": [],
        "deleted": False,
    }
    if direction == "outbound":
        record.update(source=source, userId=contact["assignedTo"])
    return record


def stage_id(pipeline: Record, stage: str) -> str:
    return str(next(s["id"] for s in pipeline["stages"] if s["name"] == stage))


def opportunity_record(
    opportunity_id: str,
    contact: Record,
    pipeline: Record,
    stage: str,
    status: str,
    value: float,
    at: datetime,
) -> Record:
    stamp = iso_utc(at)
    return {
        "id": opportunity_id,
        "name": f"{contact['name']} - PT membership",
        "monetaryValue": value,
        "pipelineId": pipeline["id"],
        "pipelineStageId": stage_id(pipeline, stage),
        "assignedTo": contact["assignedTo"],
        "status": status,
        "source": contact["source"],
        "lastStatusChangeAt": stamp,
        "lastStageChangeAt": stamp,
        "lastActionDate": stamp,
        "createdAt": stamp,
        "updatedAt": stamp,
        "contactId": contact["id"],
        "locationId": contact["locationId"],
        "contact": {k: contact[k] for k in ("id", "name", "email", "phone", "tags")},
        "customFields": [],
        "deleted": False,
    }


# --- the generator ---------------------------------------------------------------------


def generate_studio(
    location_id: str,
    *,
    trainers: int = 5,
    clients: int = 200,
    days: int = 120,
    seed: int = 0,
    now: datetime | None = None,
    company_id: str | None = None,
) -> Studio:
    """A studio with `days` of history and three weeks of bookings ahead, same seed → same world.
    `company_id`: the agency it belongs to (by default one of its own, derived from its id)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fake data, not secrets
    faker = Faker("en_US")
    faker.seed_instance(seed)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    studio = _skeleton(location_id, trainers, faker, rng, now, company_id)
    studio._logging = False  # the generated past is the baseline; the log records what follows
    window_start = now - timedelta(days=days)
    trained: list[tuple[str, datetime | None, datetime]] = []  # (contact id, churned, since)
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of young dicts would trigger collection after collection
    try:
        for _ in range(clients):
            roll = rng.random()
            category = "lead" if roll < 0.15 else "churned" if roll < 0.27 else "client"
            joined = (
                window_start + (now - window_start) * rng.random()
                if category == "lead" or rng.random() < 0.3
                else window_start - timedelta(days=rng.uniform(1, 365))
            )
            client = _generate_client(studio, rng, category, joined, window_start)
            if client is not None:
                trained.append((*client, max(joined, window_start)))
        # Goals after every client, so adding them left the GHL side of a seed's world as it was.
        for contact_id, churned, since in trained:
            _generate_goals(studio, rng, contact_id, since, churned)
    finally:
        if collecting:
            gc.enable()
    studio._logging = True
    return studio


def _skeleton(
    location_id: str,
    trainers: int,
    faker: Faker,
    rng: random.Random,
    now: datetime,
    company_id: str | None = None,
) -> Studio:
    location = location_record(location_id, f"{faker.last_name()} Strength Studio", company_id)
    users = []
    for _ in range(trainers):
        first, last = faker.first_name(), faker.last_name()
        users.append(
            {
                "id": ghl_id(rng),
                "name": f"{first} {last}",
                "firstName": first,
                "lastName": last,
                "email": f"{first}.{last}@studio.example.com".lower(),
                "roles": {"type": "account", "role": "user", "locationIds": [location_id]},
            }
        )
    calendars = [
        {
            "id": ghl_id(rng),
            "locationId": location_id,
            "name": f"PT with {user['firstName']}",
            "calendarType": "personal",
            "isActive": True,
            "slotDuration": 60,
            "slotDurationUnit": "mins",
            "teamMembers": [{"userId": user["id"], "priority": 1, "isPrimary": True}],
        }
        for user in users
    ]
    pipeline = {
        "id": ghl_id(rng),
        "name": "Memberships",
        "stages": [
            {"id": ghl_id(rng), "name": name, "position": i} for i, name in enumerate(STAGES)
        ],
    }
    return Studio(location, users, calendars, pipeline, now, rng, faker)


def hashed_id(seed: str) -> str:
    """A GHL-like id derived from `seed` by hash: the same on every run, no rng drawn."""
    return hashlib.sha256(seed.encode()).digest()[:20].translate(_ID_BYTES).decode()


def default_company_id(location_id: str) -> str:
    """The company of a studio that belongs to no agency: derived from its id."""
    return hashed_id(location_id)


def location_record(location_id: str, name: str, company_id: str | None = None) -> Record:
    """The studio's sub-account as GHL shows it. The company (unless an agency's) and the
    address derive from the location id by hash, never from the rng or faker, so they left
    every seed's world as it was."""
    digest = hashlib.sha256(location_id.encode()).digest()
    handle = _NOT_NAME.sub("", name.lower())
    return {
        "id": location_id,
        "companyId": company_id or default_company_id(location_id),
        "name": name,
        "email": f"hello@{handle}.example.com",
        "phone": f"+1212555{int.from_bytes(digest[20:22]) % 10_000:04d}",
        "address": f"{10 + digest[22] * 3} {STREETS[digest[23] % len(STREETS)]}",
        "city": "New York",
        "state": "NY",
        "postalCode": f"100{digest[24] % 40:02d}",
        "country": "US",
        "timezone": "America/New_York",
    }


def _generate_client(
    studio: Studio,
    rng: random.Random,
    category: str,
    joined: datetime,
    window_start: datetime,
) -> tuple[str, datetime | None] | None:
    """One contact and its history; for a client, returns (contact id, its last visit if
    it churned, or None while it still trains)."""
    now = studio.now
    contact = studio.add_contact(joined, category)
    touched, trained = joined, None
    if category != "lead":
        first = max(window_start, joined + timedelta(days=1))
        churn = _churn(rng, category, first, now)
        profile = Profile(
            noshow=rng.uniform(0.02, 0.1),
            cancel=rng.uniform(0.04, 0.12),
            skip=rng.uniform(0.03, 0.2),
            slots=tuple(
                (weekday, rng.choice(SESSION_HOURS))
                for weekday in rng.sample(range(6), rng.choices((1, 2, 3), (45, 40, 15))[0])
            ),
            churn=churn,
        )
        studio.profiles[contact["id"]] = profile
        churned = category == "churned"
        last = churn.until if churned and churn.until else now + timedelta(days=21)
        seen = _generate_sessions(studio, rng, contact, profile, first, last)
        touched = max(touched, seen)
        trained = (contact["id"], seen if churned else None)  # a fade's last visit, not its end
    touched = max(touched, _generate_messages(studio, rng, contact, joined))
    if rng.random() < 0.04 and not contact["dnd"]:
        contact.update(dnd=True, dndSettings=dnd_settings(True, "Set by staff"))
    contact["dateUpdated"] = iso_utc(min(now, touched + timedelta(minutes=rng.uniform(0, 600))))
    if category != "lead" or rng.random() < 0.7:
        _generate_opportunity(studio, rng, contact, category, joined)
    return trained


def _churn(rng: random.Random, category: str, first: datetime, now: datetime) -> Churn:
    """A churned client faded out or stopped at once somewhere in its stay; a current
    client may be fading right now (its stop still ahead), be taking a break, or be steady."""
    if category == "churned":
        until = first + (now - first) * rng.uniform(0.2, 0.9)
        if rng.random() < 0.35:
            return Churn("sudden", until=until)
        onset = until - timedelta(days=rng.uniform(21, 70))
        return Churn("fade", onset, until, shape=rng.uniform(0.5, 2.0))
    roll = rng.random()
    if roll < 0.15:
        onset = now - timedelta(days=rng.uniform(7, 42))
        return Churn("fade", onset, now + timedelta(days=rng.uniform(7, 42)), rng.uniform(0.5, 2))
    if roll < 0.23:
        onset = first + (now - first) * rng.random()
        return Churn("pause", onset, onset + timedelta(days=rng.uniform(14, 42)))
    return STEADY


def _generate_sessions(
    studio: Studio,
    rng: random.Random,
    contact: Record,
    profile: Profile,
    first: datetime,
    last: datetime,
) -> datetime:
    """Weekly sessions per slot, each week's booked as the client's engagement has it,
    with a realistic outcome mix; returns the latest update."""
    tz, latest = studio.tz, first
    calendar_id = studio.calendar_for(contact["assignedTo"])
    first_day, last_day = first.astimezone(tz).date(), last.astimezone(tz).date()
    for weekday, hour in profile.slots:
        day = first_day + timedelta(days=(weekday - first_day.weekday()) % 7)
        while day <= last_day:
            start = datetime(day.year, day.month, day.day, hour, tzinfo=tz)
            if rng.random() < profile.books(start.astimezone(UTC)):
                updated = _session(studio, rng, contact, calendar_id, profile, start, first)
                latest = max(latest, updated)
            day += timedelta(days=7)
    return min(latest, studio.now)


def _session(
    studio: Studio,
    rng: random.Random,
    contact: Record,
    calendar_id: str,
    profile: Profile,
    local_start: datetime,
    first: datetime,
) -> datetime:
    """One past or future session; returns when it was last updated."""
    # Arithmetic in UTC: comparing datetimes across zones costs a tz lookup each time.
    now, hour, start = studio.now, timedelta(hours=1), local_start.astimezone(UTC)
    booked = max(first - timedelta(days=1), start - timedelta(days=rng.uniform(2, 14)))
    status, updated, moved_from = "confirmed" if rng.random() < 0.75 else "new", booked, None
    if rng.random() < 0.05:  # moved at short notice: the record shows the new time
        moved_from = local_start - timedelta(hours=rng.choice((1, 2, 24)))
        updated = moved_from - timedelta(hours=rng.uniform(1, 20))
        booked = min(booked, updated - timedelta(days=rng.uniform(1, 7)))
        if updated >= now:  # not moved yet
            moved_from, updated = None, booked
    if start + hour <= now:
        noshow, cancel, late_share = profile.odds(start)
        roll = rng.random()
        if roll < cancel:
            late = rng.random() < late_share
            status = "cancelled"
            notice = timedelta(hours=rng.uniform(1, 23) if late else rng.uniform(26, 144))
            updated = max(start - notice, updated) if moved_from else start - notice
        else:
            status = "noshow" if roll < cancel + noshow else "showed"
            updated = start + hour + timedelta(minutes=rng.uniform(5, 180))
    if updated != booked:  # changed after it was booked, so booked before that
        booked = min(booked, updated - timedelta(hours=rng.uniform(1, 48)))
    booked = min(booked, now)
    updated = min(max(updated, booked), now)
    appointment = appointment_record(
        studio.new_id(), contact, calendar_id, studio.location_id, local_start, 60, status, booked
    )
    appointment["dateUpdated"] = iso_utc(updated)
    if moved_from is not None:
        appointment["rescheduledFrom"] = moved_from.isoformat()
    if rng.random() < 0.005:
        appointment["deleted"] = True
    studio._store("appointment", appointment)
    return updated


def _generate_messages(
    studio: Studio, rng: random.Random, contact: Record, joined: datetime
) -> datetime:
    """Reminders and check-ins with replies; a few clients answer STOP (and get DND)."""
    now, latest = studio.now, joined
    sent = joined
    for _ in range(rng.randint(1, 6)):
        sent = sent + (now - sent) * rng.uniform(0.05, 0.5)
        channel = "Email" if rng.random() < 0.2 else "SMS"
        text = rng.choice(REMINDERS).format(first=contact["firstName"])
        studio.add_message(
            contact["id"],
            sent,
            text,
            direction="outbound",
            channel=channel,
            status=rng.choice(("delivered", "delivered", "read", "failed")),
        )
        latest = sent
        if channel == "SMS" and rng.random() < 0.45:
            replied = min(now, sent + timedelta(minutes=rng.uniform(1, 240)))
            body = STOP if rng.random() < 0.05 else rng.choice(REPLIES)
            studio.add_message(contact["id"], replied, body, direction="inbound")
            latest = replied
            if body == STOP:
                break
    return latest


def _generate_opportunity(
    studio: Studio, rng: random.Random, contact: Record, category: str, joined: datetime
) -> None:
    stage, status = {
        "client": ("member", "won"),
        "churned": ("churned", "lost"),
    }.get(
        category,
        (
            "trial" if rng.random() < 0.3 else "lead",
            rng.choice(("open", "open", "abandoned", "lost")),
        ),
    )
    value = float(rng.choice((149, 299, 599))) if category != "lead" else 0.0
    created = joined + timedelta(minutes=rng.uniform(1, 60))
    opportunity = opportunity_record(
        studio.new_id(), contact, studio.pipeline, stage, status, value, min(created, studio.now)
    )
    changed = created + (studio.now - created) * rng.random()
    opportunity.update(
        lastStatusChangeAt=iso_utc(changed),
        lastStageChangeAt=iso_utc(changed),
        lastActionDate=iso_utc(changed),
        updatedAt=iso_utc(changed),
    )
    studio._store("opportunity", opportunity)


# --- TrainU goals ------------------------------------------------------------------------


def _generate_goals(
    studio: Studio,
    rng: random.Random,
    contact_id: str,
    since: datetime,
    churned: datetime | None,
) -> None:
    """One or two goals for four clients in five, logged by the trainer until the client
    stopped training (a churned client's unmet goals end abandoned). At-risk clients'
    goals more often stall or slide back, as their attendance does."""
    roll = rng.random()
    if roll < 0.2:
        return
    tz, until = studio.tz, min(churned or studio.now, studio.now)
    first_day, last_day = since.astimezone(tz).date(), until.astimezone(tz).date()
    latest_start = last_day - timedelta(days=1)
    weights = (30, 35, 35) if studio.profiles[contact_id].at_risk else (60, 23, 17)
    for goal_type in rng.sample(GOAL_TYPES, 1 if roll < 0.65 else 2):
        # Most goals get six weeks of entries or more; none starts on the last day.
        slack = max(0, (latest_start - first_day).days - 41)
        start = min(first_day + timedelta(days=rng.randint(0, slack)), latest_start)
        target_date = start + timedelta(weeks=rng.randint(8, 26))
        trajectory = rng.choices(TRAJECTORIES, weights)[0]
        title, baseline, target = _goal_target(rng, goal_type)
        goal_id = _uuid(rng)
        unit, gaps, _, _ = GOAL_SHAPES[goal_type]
        offsets, moments, day = [], [], 0
        while True:  # mornings, local time, from the start date until training stopped
            on = start + timedelta(days=day)
            hour, minute = rng.randint(6, 10), rng.randint(0, 59)
            at = datetime(on.year, on.month, on.day, hour, minute, tzinfo=tz).astimezone(UTC)
            if at > until:
                break
            offsets.append(day)
            moments.append(at)
            day += rng.randint(*gaps)
        span = (target_date - start).days
        values = _entry_values(rng, goal_type, trajectory, baseline, target, offsets, span)
        for at, value in zip(moments, values, strict=True):
            entry_id = _uuid(rng)
            studio.goal_entries[entry_id] = {
                "id": entry_id,
                "goal_id": goal_id,
                "contact_id": contact_id,
                "value": value,
                "recorded_at": iso_utc(at),
            }
        baseline_value, target_value = _decimal(baseline), _decimal(target)
        increase = target > baseline
        reached = values[-1] >= target_value if increase else values[-1] <= target_value
        studio.goals[goal_id] = {
            "id": goal_id,
            "contact_id": contact_id,
            "goal_type": goal_type,
            "title": title,
            "unit": unit,
            "direction": "increase" if increase else "decrease",
            "baseline_value": baseline_value,
            "target_value": target_value,
            "start_date": start.isoformat(),
            "target_date": target_date.isoformat(),
            "status": "achieved" if reached else "abandoned" if churned else "active",
            "trajectory": trajectory,
        }


def _goal_target(rng: random.Random, goal_type: str) -> tuple[str, float, float]:
    """(title, baseline, target) of a plausible goal of this type."""
    if goal_type == "body_weight":
        baseline, loss = round(rng.uniform(58, 118), 1), rng.randint(3, 12)
        return f"Lose {loss} kg", baseline, round(baseline - loss, 1)
    if goal_type == "strength":
        lift, low, high = rng.choice(LIFTS)
        baseline = 2.5 * rng.randint(low, high)
        target = baseline + 2.5 * rng.randint(2, 12)
        return f"{lift} {target:g} kg", baseline, target
    baseline = rng.randint(3, 8)
    target = baseline + rng.randint(2, 6)
    return f"{target} sessions a month", baseline, target


def _entry_values(
    rng: random.Random,
    goal_type: str,
    trajectory: str,
    baseline: float,
    target: float,
    offsets: list[int],
    span: int,
) -> list[Decimal]:
    """The first entry is the baseline; then progress along the plan at the client's pace
    with measurement noise. Over its last three to five weeks a stalled goal holds still
    and a regressing one slides back, faster than noise can hide."""
    if len(offsets) == 1:
        return [_decimal(baseline)]
    _, _, noise, slowest = GOAL_SHAPES[goal_type]
    delta = target - baseline
    sign = 1 if delta > 0 else -1
    pace = rng.uniform(1.0, 1.2) if trajectory == "on_track" else rng.uniform(0.8, 1.2)
    last = offsets[-1]
    turn = last + 1 if trajectory == "on_track" else max(0, last - rng.randint(21, 35))

    def planned(day: int) -> float:
        return baseline + delta * min(1.0, pace * day / span)

    counts, slide = goal_type == "sessions_per_month", 0.0
    if trajectory == "regressing" and counts:  # by a third to a half a month, at least three
        slide = max(3.0, planned(turn) * rng.uniform(0.3, 0.6)) / (last - turn)
    elif trajectory == "regressing":  # per day; outpaces the plan and the noise
        slide = max(abs(delta) * pace / span * rng.uniform(1.0, 1.5), slowest / 7)
    values = [baseline]
    for day in offsets[1:]:
        value, jitter = planned(min(day, turn)), noise
        if day >= turn and slide:
            value -= sign * slide * (day - turn)
        elif day >= turn:  # stalled: the same reading, give or take a scale's wobble
            jitter = min(noise, 0.1)
        if jitter:
            value += rng.uniform(-jitter, jitter)
        values.append(max(0, round(value)) if counts else value)
    return [_decimal(value) for value in values]


def _uuid(rng: random.Random) -> str:
    """A version-4 UUID from the seeded rng, so a seed's goals keep their ids."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _decimal(value: float) -> Decimal:
    """One decimal place, exactly what Postgres numeric hands back."""
    return Decimal(f"{value:.1f}")

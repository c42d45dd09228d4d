"""The shapes of the GHL REST answers the client reads, one per endpoint.

GHL's JSON is used as parsed, not validated on arrival: these declare what TrainU reads of
each answer, after GHL's OpenAPI specs (`shared/ghl/openapi`; the spec's schema name in
brackets), so a misread key is a type error rather than a KeyError in a pull. A key GHL may
leave out is optional and read with a default. The records inside stay plain JSON objects
(pulled ones go through the payload parser field by field, like webhooks).
"""

from __future__ import annotations

from typing import Any, TypedDict

Record = dict[str, Any]  # one GHL object (a contact, an appointment...) as its JSON has it


class ContactSearch(TypedDict, total=False):
    """POST /contacts/search."""

    contacts: list[Record]


class LocationAnswer(TypedDict):
    """GET /locations/{locationId} [GetLocationByIdSuccessfulResponseDto]."""

    location: Record


class UserSearch(TypedDict, total=False):
    """GET /users/search [SearchUserSuccessfulResponseDto]."""

    users: list[Record]
    count: int


class Pipelines(TypedDict, total=False):
    """GET /opportunities/pipelines [GetPipelinesSuccessfulResponseDto]."""

    pipelines: list[Record]


class ConversationSearch(TypedDict, total=False):
    """GET /conversations/search [SendConversationResponseDto]."""

    conversations: list[Record]


class MessagePage(TypedDict, total=False):
    """GET /conversations/{conversationId}/messages [GetMessagesByConversationResponseDto]."""

    messages: list[Record]
    lastMessageId: str
    nextPage: bool


class Calendars(TypedDict, total=False):
    """GET /calendars/ [CalendarsGetSuccessfulResponseDTO]."""

    calendars: list[Record]


class CalendarEvents(TypedDict, total=False):
    """GET /calendars/events [GetCalendarEventsSuccessfulResponseDTO]."""

    events: list[Record]


class AppointmentAnswer(TypedDict):
    """GET /calendars/events/appointments/{eventId} [GetCalendarEventSuccessfulResponseDTO]."""

    event: Record


class MessageExport(TypedDict, total=False):
    """GET /conversations/messages/export [ExportMessagesResponseDto]."""

    messages: list[Record]
    nextCursor: str


class OpportunitySearch(TypedDict, total=False):
    """GET /opportunities/search [SearchSuccessfulResponseDto]."""

    opportunities: list[Record]
    meta: Record  # keyset paging: startAfter, startAfterId, nextPageUrl


class SentMessage(TypedDict, total=False):
    """POST /conversations/messages [SendMessageResponseDto]."""

    conversationId: str
    messageId: str
    emailMessageId: str
    messageIds: list[str]
    msg: str
    status: str

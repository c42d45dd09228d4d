"""What can go wrong when asking GHL, as the client raises it: a refusal (`GhlError`), one
worth asking again (`RetryableGhlError`), a spent day (`DailyLimitReached`) and an answer
that cannot be read or paged on (`GhlAnswerError`, `GhlPagingError`)."""

from __future__ import annotations


class GhlError(Exception):
    """GHL answered with an error that retrying will not fix (or retries ran out)."""

    def __init__(self, status: int, message: str, trace_id: str | None = None) -> None:
        super().__init__(
            f"GHL {status}: {message}" + (f" (traceId {trace_id})" if trace_id else "")
        )
        self.status = status
        self.message = message
        self.trace_id = trace_id


class RetryableGhlError(GhlError):
    """429 or 5xx: GHL may succeed if asked again."""

    def __init__(
        self, status: int, message: str, trace_id: str | None, retry_after: float | None
    ) -> None:
        super().__init__(status, message, trace_id)
        self.retry_after = retry_after


class DailyLimitReached(GhlError):
    """The location's daily quota is spent; pulls stop and resume from their cursor later."""


class GhlAnswerError(GhlError):
    """GHL said yes but its answer cannot be read: an empty, truncated or non-JSON body, or
    a listing of the wrong shape. Asking again at once would get the same, so it is not
    retried here: a pull of the stream ends, its cursor kept, and the next run tries again.
    The message names the endpoint and the fault, never the body's content (clients' data)."""

    def __init__(self, endpoint: str, status: int, problem: str) -> None:
        super().__init__(status, f"{endpoint}: {problem}")
        self.endpoint = endpoint
        self.problem = problem


class GhlPagingError(GhlAnswerError):
    """A listing that would never end: its next page is one already read (the cursor did
    not move on) or it holds more records than the page asked for."""

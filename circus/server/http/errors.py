"""The one exception a view raises to answer with an error status and a message."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from circus.domain.errors import Conflict, Forbidden, InvalidValue, NotFound

# A use case's refusal (circus.services) and the status every front end answers it with.
REFUSAL_STATUS: dict[type[Exception], int] = {InvalidValue: 400, Forbidden: 403,
                                              NotFound: 404, Conflict: 409}


class ApiError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Seconds, sent as Retry-After: a 429/503 that says when to come back.
        self.retry_after = retry_after


def bad_field(field: str, problem: str) -> ApiError:
    """400 naming the field, e.g. `name: must match ...`."""
    return ApiError(400, f"{field}: {problem}")


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """An operation's refusal as an ApiError with its status and its message unchanged."""
    try:
        yield
    except (InvalidValue, Forbidden, NotFound, Conflict) as exc:
        raise ApiError(REFUSAL_STATUS[type(exc)], str(exc)) from None

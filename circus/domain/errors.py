"""The errors Circus raises on purpose, under one root."""

from __future__ import annotations


class CircusError(Exception):
    """Root of the errors Circus raises itself (as opposed to bugs)."""


class StartupError(CircusError):
    """A role cannot start: the message names the cause and the fix, on one line."""


class TaskFailed(CircusError):
    """A long-running task of a role died of an unexpected error, so the role stopped;
    `circus run` names the task and the cause on one line and exits 1."""

    def __init__(self, task: str, cause: BaseException) -> None:
        super().__init__(f"task {task} failed: {cause!r}")
        self.task = task
        self.cause = cause


class InvalidValue(CircusError, ValueError):
    """A value from outside (a query parameter, a form field) that the vocabulary does
    not know. `field` names where it came from; a front end answers 400 with
    `field: problem` (circus.server.http.errors.bad_field)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Forbidden(CircusError):
    """The caller's role does not hold what the operation needs (roles.OPERATIONS): a
    front end answers 403 with the message."""


class NotFound(CircusError):
    """What the operation names does not exist: 404 with the message."""


class Conflict(CircusError):
    """The operation collides with what exists (a name taken): 409 with the message."""

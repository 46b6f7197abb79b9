"""Build status names: Hydra's `buildstatus` codes and the queue states, both ways, and
the states of an evaluation. The one place these values are defined in Python."""

from __future__ import annotations

import enum

from circus.domain.errors import InvalidValue


class BuildStatus(enum.IntEnum):
    """How a finished build ended: Hydra's `buildstatus` codes (5 is unused by Hydra too;
    its API document files 8, its source's "cached failure", under "*: failed")."""

    SUCCEEDED = 0
    FAILED = 1
    DEP_FAILED = 2
    ABORTED = 3
    CANCELLED = 4
    FAILED_WITH_OUTPUT = 6
    TIMED_OUT = 7
    CACHED_FAILURE = 8
    UNSUPPORTED = 9
    LOG_LIMIT_EXCEEDED = 10
    OUTPUT_LIMIT_EXCEEDED = 11

    @property
    def label(self) -> str:
        """The name the API and the dashboard show: `dependency-failed`, `timed-out`."""
        return _LABELS.get(self, self.name.lower().replace("_", "-"))


_LABELS = {BuildStatus.DEP_FAILED: "dependency-failed"}

CODE_NAMES: dict[int, str] = {int(code): code.label for code in BuildStatus}
MAX_CODE = int(max(BuildStatus))

# What Hydra's "restart-failed" and "restart-aborted" take again: every code but success
# (Hydra's API: "*: failed"), and the builds stopped rather than failed.
FAILED_CODES: tuple[BuildStatus, ...] = tuple(
    code for code in BuildStatus if code is not BuildStatus.SUCCEEDED)
ABORTED_CODES: tuple[BuildStatus, ...] = (
    BuildStatus.ABORTED, BuildStatus.CANCELLED, BuildStatus.UNSUPPORTED)


class BuildState(enum.StrEnum):
    """Where a build is in the queue: queued → running → finished (with a BuildStatus)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


STATES: tuple[str, ...] = tuple(state.value for state in BuildState)
UNFINISHED: tuple[str, ...] = (BuildState.QUEUED.value, BuildState.RUNNING.value)

# An evaluation's `status` (the evaluations table checks the same list).
EVALUATION_STATUSES = ("running", "succeeded", "failed", "cancelled")
# A notification delivery's `status` (notification_tasks checks the same list).
NOTIFICATION_STATUSES = ("pending", "sending", "done", "failed")
# builds.sr.ht's job and task statuses, as its API names them.
SRHT_JOB_STATUSES = ("pending", "queued", "running", "success", "failed", "cancelled",
                     "timeout")
SRHT_JOB_ENDED = ("success", "failed", "cancelled", "timeout")
SRHT_TASK_STATUSES = ("pending", "running", "success", "failed", "skipped")

_ALIASES = {"success": BuildStatus.SUCCEEDED, "successful": BuildStatus.SUCCEEDED,
            "timeout": BuildStatus.TIMED_OUT, "canceled": BuildStatus.CANCELLED}


def name(state: str, buildstatus: int | None) -> str:
    if buildstatus is None:
        return state
    return CODE_NAMES.get(buildstatus, f"status-{buildstatus}")


def filter_values() -> list[str]:
    """Every value `status=` takes, as the OpenAPI document lists them."""
    return [*STATES, *CODE_NAMES.values(), *_ALIASES, *(str(c) for c in range(MAX_CODE + 1))]


def parse_filter(raw: str) -> tuple[str | None, int | None]:
    """`status=` as (state, buildstatus): a queue state, a name or a numeric code.
    Anything else raises InvalidValue for the field `status`."""
    text = raw
    if text in STATES:
        return text, None
    if text in {str(code) for code in range(MAX_CODE + 1)}:
        return None, int(text)
    codes = {v: k for k, v in CODE_NAMES.items()} | {k: int(v) for k, v in _ALIASES.items()}
    if text in codes:
        return None, codes[text]
    choices = ", ".join([*STATES, *CODE_NAMES.values()])
    raise InvalidValue("status", f"unknown status {raw!r} (one of {choices}, "
                                 f"or a number 0-{MAX_CODE})")

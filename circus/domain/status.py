"""Build status names: Hydra's `buildstatus` codes and the queue states, both ways."""

from __future__ import annotations

from circus.server.http.errors import bad_field

# Hydra's codes (5 and 8 are unused by Hydra too).
CODE_NAMES = {
    0: "succeeded", 1: "failed", 2: "dependency-failed", 3: "aborted", 4: "cancelled",
    6: "failed-with-output", 7: "timed-out", 9: "unsupported", 10: "log-limit-exceeded",
    11: "output-limit-exceeded",
}
STATES = ("queued", "running", "finished")
_ALIASES = {"success": 0, "successful": 0, "timeout": 7, "canceled": 4}
MAX_CODE = 11


def name(state: str, buildstatus: int | None) -> str:
    if buildstatus is None:
        return state
    return CODE_NAMES.get(buildstatus, f"status-{buildstatus}")


def filter_values() -> list[str]:
    """Every value `status=` takes, as the OpenAPI document lists them."""
    return [*STATES, *CODE_NAMES.values(), *_ALIASES, *(str(c) for c in range(MAX_CODE + 1))]


def parse_filter(raw: str) -> tuple[str | None, int | None]:
    """`status=` as (state, buildstatus): a queue state, a name or a numeric code."""
    text = raw
    if text in STATES:
        return text, None
    if text in {str(code) for code in range(MAX_CODE + 1)}:
        return None, int(text)
    codes = {v: k for k, v in CODE_NAMES.items()} | _ALIASES
    if text in codes:
        return None, codes[text]
    choices = ", ".join([*STATES, *CODE_NAMES.values()])
    raise bad_field("status", f"unknown status {raw!r} (one of {choices}, or a number 0-11)")

"""Build status names: Hydra's `buildstatus` codes and the queue states, both ways."""

from __future__ import annotations

from circus.server.errors import bad_field

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


def parse_filter(raw: str) -> tuple[str | None, int | None]:
    """`status=` as (state, buildstatus): a queue state, a name or a numeric code."""
    text = raw.strip().lower().replace("_", "-")
    if text in STATES:
        return text, None
    if text.isdigit():
        code = int(text)
        if code > MAX_CODE:
            raise bad_field("status", f"buildstatus codes are 0-{MAX_CODE}, got {code}")
        return None, code
    codes = {v: k for k, v in CODE_NAMES.items()} | _ALIASES
    if text in codes:
        return None, codes[text]
    choices = ", ".join([*STATES, *CODE_NAMES.values()])
    raise bad_field("status", f"unknown status {raw!r} (one of {choices}, or a number 0-11)")

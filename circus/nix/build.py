"""Reading `nix build --log-format internal-json`: its stream and its result (the
process itself is run by circus.proc.nix.build).

The structured log gives three things: the builder's output lines (streamed to the
caller as they arrive), the steps (each derivation built or path substituted, with
times and status), and Nix's error messages, from which the Hydra status is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from circus.domain.status import BuildStatus

# Activity and result types of Nix's logger (src/libutil/logging.hh).
ACT_BUILD = 105
ACT_SUBSTITUTE = 108
RES_BUILD_LOG_LINE = 101

_TIMED_OUT = re.compile(r"timed out after \d+ seconds")
_LOG_LIMIT = re.compile(r"killed after writing more than \d+ bytes of log output")
# Nix's exit status for build failures: 0x60 | 0x01 when a build timed out.
_EXIT_TIMED_OUT = 101

LineSink = Callable[[str], None]


@attrs.define
class Step:
    step_nr: int
    drv_path: str
    kind: str  # 'build' or 'substitution'
    started_at: datetime
    machine: str = ""
    finished_at: datetime | None = None
    status: int | None = None
    error_message: str | None = None


@attrs.define
class NixResult:
    status: int
    error: str | None
    outputs: dict[str, str]
    steps: list[Step]
    # The machine failed, not the build: Nix stopped before any build or substitution
    # began (no store, no build users, an unreachable builder). Never the user's fault.
    infrastructure: bool = False


@attrs.define(eq=False)
class Reader:
    """Turns internal-json lines into log lines, steps and errors."""

    on_line: LineSink
    steps: dict[int, Step] = attrs.Factory(dict)
    errors: list[str] = attrs.Factory(list)

    def feed(self, raw: str) -> None:
        if not raw.startswith("@nix "):
            self.on_line(raw)
            return
        try:
            event = json.loads(raw[5:])
        except ValueError:
            self.on_line(raw)
            return
        handler = getattr(self, f"_on_{event.get('action')}", None)
        if handler is not None:
            handler(event)

    def _on_start(self, event: dict[str, Any]) -> None:
        kind = {ACT_BUILD: "build", ACT_SUBSTITUTE: "substitution"}.get(event.get("type", 0))
        if kind is None:
            return
        fields = event.get("fields") or [""]
        if self._same_remote_build(str(fields[0]), kind):
            return  # the remote machine's own activity for the build the hook sent there
        step = Step(step_nr=len(self.steps) + 1, drv_path=str(fields[0]), kind=kind,
                    started_at=_now(), machine=str(fields[1]) if len(fields) > 1 else "")
        self.steps[event["id"]] = step
        if event.get("text"):
            self.on_line(event["text"])

    def _same_remote_build(self, drv_path: str, kind: str) -> bool:
        return any(s.drv_path == drv_path and s.kind == kind and s.machine
                   and s.finished_at is None for s in self.steps.values())

    def _on_stop(self, event: dict[str, Any]) -> None:
        step = self.steps.get(event.get("id", -1))
        if step is not None and step.finished_at is None:
            step.finished_at = _now()

    def _on_result(self, event: dict[str, Any]) -> None:
        if event.get("type") == RES_BUILD_LOG_LINE:
            fields = event.get("fields") or [""]
            self.on_line(str(fields[0]))

    def _on_msg(self, event: dict[str, Any]) -> None:
        text = _strip_ansi(event.get("raw_msg") or event.get("msg", ""))
        if event.get("level", 9) <= 0:
            self.errors.append(text)
        if event.get("level", 9) <= 3:
            self.on_line(text)

    def finish(self) -> list[Step]:
        """Steps with a status: named in an error → failed; stopped → done; else aborted."""
        for step in self.steps.values():
            failure = next((e for e in self.errors if step.drv_path and step.drv_path in e), None)
            if failure is not None:
                step.status, step.error_message = _status_of([failure], 0), failure
            elif step.finished_at is not None:
                step.status = BuildStatus.SUCCEEDED
            else:
                step.status = BuildStatus.ABORTED
            step.finished_at = step.finished_at or _now()
        return sorted(self.steps.values(), key=lambda s: s.step_nr)


def _status_of(errors: list[str], returncode: int) -> int:
    text = "\n".join(errors)
    if _LOG_LIMIT.search(text):
        return BuildStatus.LOG_LIMIT_EXCEEDED
    if _TIMED_OUT.search(text) or returncode == _EXIT_TIMED_OUT:
        return BuildStatus.TIMED_OUT
    return BuildStatus.FAILED


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _now() -> datetime:
    return datetime.now(UTC)


def result_of(returncode: int, stdout: bytes, reader: Reader) -> NixResult:
    if returncode == 0:
        outputs: dict[str, str] = {}
        for entry in json.loads(stdout or b"[]"):
            outputs.update(entry.get("outputs", {}))
        return NixResult(BuildStatus.SUCCEEDED, None, outputs, reader.finish())
    status = _status_of(reader.errors, returncode)
    error = "\n".join(reader.errors) or f"nix build exited with status {returncode}"
    infrastructure = status == BuildStatus.FAILED and not reader.steps
    return NixResult(BuildStatus.ABORTED if infrastructure else status, error, {}, reader.finish(),
                     infrastructure=infrastructure)

"""circus.domain.status: Hydra's `buildstatus` numbers, the names the API and dashboard
show for them, the queue states, and the `status=` filter that reads any of these."""

from __future__ import annotations

import re

import pytest

from circus.domain import status
from circus.domain.errors import InvalidValue
from circus.domain.status import BuildState, BuildStatus

# Hydra's numbers as its API document lists them (Hydra's source also has 12, "not
# deterministic", which Circus does not define).
HYDRA = {0: "SUCCEEDED", 1: "FAILED", 2: "DEP_FAILED", 3: "ABORTED", 4: "CANCELLED",
         6: "FAILED_WITH_OUTPUT", 7: "TIMED_OUT", 8: "CACHED_FAILURE", 9: "UNSUPPORTED",
         10: "LOG_LIMIT_EXCEEDED", 11: "OUTPUT_LIMIT_EXCEEDED"}


def test_the_codes_are_hydras_numbers() -> None:
    assert {int(code): code.name for code in BuildStatus} == HYDRA
    assert BuildStatus(6) is BuildStatus.FAILED_WITH_OUTPUT
    # An int: it finds, and is found by, the plain numbers the database holds.
    assert {7: "row"}[BuildStatus.TIMED_OUT] == "row"


@pytest.mark.parametrize("unused", [5, 12])
def test_codes_hydra_does_not_give_builds_are_not_statuses(unused: int) -> None:
    with pytest.raises(ValueError):
        BuildStatus(unused)


def test_labels() -> None:
    assert status.CODE_NAMES == {
        0: "succeeded", 1: "failed", 2: "dependency-failed", 3: "aborted", 4: "cancelled",
        6: "failed-with-output", 7: "timed-out", 8: "cached-failure", 9: "unsupported",
        10: "log-limit-exceeded",
        11: "output-limit-exceeded"}
    assert BuildStatus.DEP_FAILED.label == "dependency-failed"
    assert status.MAX_CODE == 11


def test_failed_is_every_code_but_success_and_aborted_is_the_stopped_ones() -> None:
    assert BuildStatus.SUCCEEDED not in status.FAILED_CODES
    assert len(status.FAILED_CODES) == len(BuildStatus) - 1
    assert set(status.ABORTED_CODES) == {3, 4, 9}


def test_queue_states() -> None:
    assert status.STATES == ("queued", "running", "finished")
    assert status.UNFINISHED == ("queued", "running")
    assert BuildState("running") is BuildState.RUNNING
    assert status.EVALUATION_STATUSES == ("running", "succeeded", "failed", "cancelled")


def test_the_name_shown_is_the_state_until_finished_then_the_label() -> None:
    assert status.name("queued", None) == "queued"
    assert status.name("running", None) == "running"
    assert status.name("finished", 0) == "succeeded"
    assert status.name("finished", 7) == "timed-out"
    # A number from an older or newer Hydra database still gets a name.
    assert status.name("finished", 99) == "status-99"


@pytest.mark.parametrize(("raw", "parsed"), [
    ("queued", ("queued", None)),
    ("finished", ("finished", None)),
    ("succeeded", (None, 0)),
    ("dependency-failed", (None, 2)),
    ("output-limit-exceeded", (None, 11)),
    ("0", (None, 0)),
    ("11", (None, 11)),
    # Spellings people use for the same codes.
    ("success", (None, 0)),
    ("successful", (None, 0)),
    ("timeout", (None, 7)),
    ("canceled", (None, 4)),
])
def test_the_status_filter_reads_states_names_numbers_and_aliases(
        raw: str, parsed: tuple[str | None, int | None]) -> None:
    assert status.parse_filter(raw) == parsed


@pytest.mark.parametrize("raw", ["", "Succeeded", "dep_failed", "99", "-1", "00", " 1", "done"])
def test_an_unknown_status_is_refused_naming_the_field_and_the_choices(raw: str) -> None:
    with pytest.raises(InvalidValue, match=f"^status: unknown status {re.escape(repr(raw))} "
                                           r"\(one of queued, running, finished, succeeded, "
                                           r".*output-limit-exceeded, or a number 0-11\)$"
                       ) as caught:
        status.parse_filter(raw)
    assert caught.value.field == "status"


def test_every_filter_value_parses() -> None:
    values = status.filter_values()
    assert len(values) == len(set(values))
    for value in values:
        status.parse_filter(value)  # would raise InvalidValue
    assert {"queued", "timed-out", "timeout", "0", "11"} <= set(values)

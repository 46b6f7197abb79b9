"""How many Nix workers an evaluator runs: never more than the machine's memory holds
with every worker at its limit."""

from __future__ import annotations

import pytest

from circus.evaluator.workers import Limits, plan


@pytest.mark.parametrize(("asked", "memory_mb", "expected"), [
    # (workers, max_memory_mb, max_concurrent_evals), machine → (workers, concurrent)
    ((2, 4096, 4), 24_000, (1, 4)),    # workers lowered first
    ((8, 1024, 2), 24_000, (8, 2)),    # fits: unchanged
    ((4, 4096, 4), 10_000, (1, 2)),    # then concurrent evaluations
    ((4, 4096, 1), 2_000, (1, 1)),     # one worker always runs
])
def test_workers_fit_the_machine(asked: tuple[int, int, int], memory_mb: int,
                                 expected: tuple[int, int]) -> None:
    workers, max_memory_mb, concurrent = asked
    limits, evals = plan(workers, max_memory_mb, concurrent, memory_mb)
    assert (limits.workers, evals) == expected
    assert limits == Limits(workers=expected[0], max_memory_mb=max_memory_mb)

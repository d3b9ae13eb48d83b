from __future__ import annotations

import pytest

from tablet_workcell.errors import ConfigError
from tablet_workcell.simtime import SimClock

SECOND = 1_000_000_000


def test_sim_time_runs_at_the_factor_from_the_start_time() -> None:
    clock = SimClock(real_time_factor=100.0, start_time_ns=5 * SECOND, real_origin_ns=1_000)
    assert clock.now_ns(1_000) == 5 * SECOND
    assert clock.now_ns(1_000 + SECOND // 2) == 55 * SECOND


def test_changing_the_factor_keeps_time_continuous() -> None:
    clock = SimClock(real_time_factor=2.0, start_time_ns=0, real_origin_ns=0)
    before = clock.now_ns(10 * SECOND)
    clock.set_factor(10.0, 10 * SECOND)
    assert clock.now_ns(10 * SECOND) == before == 20 * SECOND
    assert clock.now_ns(11 * SECOND) == 30 * SECOND


def test_real_time_going_backwards_never_moves_sim_time_back() -> None:
    clock = SimClock(real_time_factor=1.0, start_time_ns=7, real_origin_ns=100)
    assert clock.now_ns(50) == 7


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan")])
def test_non_positive_factor_is_rejected_with_a_fix(factor: float) -> None:
    with pytest.raises(ConfigError, match=r"must be greater than 0; use 1\.0 for real time"):
        SimClock(real_time_factor=factor, start_time_ns=0, real_origin_ns=0)

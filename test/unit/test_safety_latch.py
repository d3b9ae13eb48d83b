from __future__ import annotations

import pytest

from tablet_workcell.safety import EstopLatch, EstopResetRefusedError


def test_engage_latches_and_keeps_the_first_reason() -> None:
    latch = EstopLatch()
    state, changed = latch.engage("door opened", "panel")
    assert changed and state.active and state.reason == "door opened" and state.source == "panel"
    state, changed = latch.engage("second press", "orchestrator")
    assert not changed and state.reason == "door opened"


@pytest.mark.parametrize("operator", ["", "   "])
def test_reset_without_operator_is_refused_and_latch_stays(operator: str) -> None:
    latch = EstopLatch()
    latch.engage("test", "panel")
    with pytest.raises(EstopResetRefusedError, match="no operator id"):
        latch.reset(operator)
    assert latch.state.active


def test_reset_by_operator_clears_and_records_who() -> None:
    latch = EstopLatch(engaged=True)
    assert latch.state.active and latch.state.source == "configuration"
    state, changed = latch.reset(" alice ")
    assert changed and not state.active and state.source == "alice"
    assert latch.reset("alice") == (state, False)

"""Latched emergency stop: the decision logic of the ``safety`` node, without ROS.

Engaging is always allowed and idempotent (a second press keeps the first reason).
Resetting needs an explicit operator identity, so no program can clear an e-stop
behind the operator's back; the node publishes the state transient-local so a node
that starts (or restarts) after the e-stop still sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tablet_workcell.errors import WorkcellError
from tablet_workcell.parameters import ParamSpec

SAFETY_PARAMETERS = (
    ParamSpec(
        "engaged_at_start",
        "bool",
        False,
        "start with the e-stop engaged (an operator must reset it before motion)",
    ),
    ParamSpec(
        "status_period_s",
        "float",
        1.0,
        "period of the republished e-stop state and station status [s]",
        minimum=0.05,
        maximum=60.0,
    ),
)


class EstopResetRefusedError(WorkcellError):
    """A reset was asked for without an operator identity."""


@dataclass(frozen=True)
class EstopState:
    """Value of the e-stop latch."""

    active: bool
    reason: str = ""
    source: str = ""


class EstopLatch:
    """The e-stop latch. Not thread-safe: the node serialises calls on its executor."""

    def __init__(self, engaged: bool = False) -> None:
        self._state = EstopState(
            active=engaged,
            reason="engaged at start-up" if engaged else "",
            source="configuration" if engaged else "",
        )

    @property
    def state(self) -> EstopState:
        return self._state

    def engage(self, reason: str, source: str) -> tuple[EstopState, bool]:
        """Engage; returns the state and whether it changed."""
        if self._state.active:
            return self._state, False
        self._state = EstopState(active=True, reason=reason or "no reason given", source=source)
        return self._state, True

    def reset(self, operator_id: str) -> tuple[EstopState, bool]:
        """Reset by an identified operator; returns the state and whether it changed."""
        if not operator_id.strip():
            raise EstopResetRefusedError(
                "e-stop reset refused: no operator id given. A reset needs the id of the "
                "operator who checked the cell is safe (operator_id field)."
            )
        if not self._state.active:
            return self._state, False
        self._state = replace(self._state, active=False, reason="", source=operator_id.strip())
        return self._state, True

"""Faults a simulator injects into its replies, set by parameter.

The same settings serve every instrument: a slow instrument (``reply_delay_s``), lost
replies (timeouts), garbled or truncated replies, the instrument's own error codes
(each simulator says which reply that is), and a port that disappears after a while.
Draws come from a seeded generator so a failing test reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from tablet_workcell.errors import ConfigError


@dataclass(frozen=True)
class FaultSettings:
    reply_delay_s: float = 0.0  # every reply is this late
    drop_probability: float = 0.0  # a reply never comes
    garble_probability: float = 0.0  # bytes of a reply are flipped
    truncate_probability: float = 0.0  # a reply stops half-way (no terminator)
    device_error_probability: float = 0.0  # the instrument answers with its own error code
    disconnect_after_s: float = 0.0  # > 0: the port disappears this long after start
    seed: int = 0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.endswith("probability") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault {item.name}={value!r} must be between 0 and 1.")
            if item.name.endswith("_s") and value < 0.0:
                raise ConfigError(f"fault {item.name}={value!r} must be 0 or more seconds.")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> FaultSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown fault setting(s) {unknown}; known: {sorted(known)}.")
        try:
            numbers = {k: float(v) for k, v in values.items() if k != "seed"}
            seed = int(values.get("seed", 0))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"fault settings must be numbers: {error}.") from error
        return cls(seed=seed, **numbers)

    @property
    def any(self) -> bool:
        return self != FaultSettings(seed=self.seed)


class FaultInjector:
    """Applies :class:`FaultSettings` to the replies of one simulator."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = np.random.default_rng(settings.seed)

    def device_error(self) -> bool:
        """Whether this command should be answered with the instrument's error code."""
        p = self.settings.device_error_probability
        return p > 0.0 and bool(self._rng.random() < p)

    def distort(self, reply: bytes) -> bytes | None:
        """The reply as it goes on the wire; None when it is dropped."""
        s = self.settings
        if not reply:
            return reply
        if s.drop_probability > 0.0 and self._rng.random() < s.drop_probability:
            return None
        if s.truncate_probability > 0.0 and self._rng.random() < s.truncate_probability:
            return reply[: max(1, len(reply) // 2)]
        if s.garble_probability > 0.0 and self._rng.random() < s.garble_probability:
            # Printable bytes are replaced by printable junk; control bytes (CR, LF,
            # STX, ETX) stay, so the framing survives and the parser sees the damage.
            data = bytearray(reply)
            printable = [i for i, byte in enumerate(data) if 0x20 <= byte < 0x7F]
            if printable:
                count = max(1, len(printable) // 4)
                for index in self._rng.choice(printable, size=count, replace=False):
                    data[int(index)] = int(self._rng.integers(0x21, 0x7F))
            return bytes(data)
        return reply

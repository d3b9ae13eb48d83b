"""The balance's side of MT-SICS, answering from a weighing cell it is given.

The simulator knows the protocol, not the physics: it asks a :class:`WeighingCell` (the
dispensing station's shared world in :mod:`tablet_workcell.devices.dosing.simulator`) for
the net reading and its stability, and tells it to zero and tare. ``S``, ``Z`` and ``T``
wait inside the balance for a stable reading, as the real one does, and give up with
``S I`` / ``Z I`` / ``T I`` after ``stability_timeout_s`` of instrument time; the waiting
reply is sent from :meth:`tick`. While one waits, another weighing command is answered
"not executable" and ``@`` cancels it (its reply is the serial number, ``I4 A "..."``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from tablet_workcell.devices.balance import codec
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument

LOG = logging.getLogger(__name__)


class WeighingCell(Protocol):
    """What the balance simulator needs from the physics (all masses in kg)."""

    @property
    def lock(self) -> contextlib.AbstractContextManager[Any]: ...  # held while a command runs

    def advance(self, now_s: float) -> None: ...

    @property
    def net_kg(self) -> float: ...

    @property
    def gross_kg(self) -> float: ...  # since the last zero

    @property
    def power_on_gross_kg(self) -> float: ...  # since switching on (the zero range is around it)

    @property
    def stable(self) -> bool: ...

    def zero(self) -> None: ...

    def tare(self) -> float: ...

    def clear_tare(self) -> None: ...


@dataclass(frozen=True)
class BalanceIdentity:
    model: str = "XS205DU-SIM"
    serial: str = "SIM0000001"
    firmware: str = "1.10 18.6.4.1361.772"
    capacity_kg: float = 0.220
    readability_kg: float = 1e-8


class MtSicsBalanceSimulator(SimulatedInstrument):
    """MT-SICS level 0 subset: S, SI, Z, T, @, I2, I3, I4 (replies in ``unit``)."""

    name = "balance"

    def __init__(
        self,
        cell: WeighingCell,
        faults: FaultSettings | None = None,
        identity: BalanceIdentity | None = None,
        unit: str = "g",
        stability_timeout_s: float = 5.0,
        zero_range_fraction: float = 0.02,
    ) -> None:
        super().__init__(faults)
        if unit not in codec.UNIT_KG:
            raise ValueError(f"balance unit {unit!r} must be one of {sorted(codec.UNIT_KG)}")
        self.cell = cell
        self.identity = identity or BalanceIdentity()
        self.unit = unit
        self.decimals = max(0, round(-math.log10(self.identity.readability_kg / codec.UNIT_KG[unit])))
        self.stability_timeout_s = stability_timeout_s
        self.zero_range_kg = zero_range_fraction * self.identity.capacity_kg
        self._pending: tuple[str, float] | None = None  # (command, give-up time)

    # ------------------------------------------------------------------ protocol
    def handle_line(self, line: bytes, now_s: float) -> bytes:
        if any(byte < 0x20 or byte > 0x7E for byte in line):
            return codec.encode_error("ET")
        command, *arguments = line.decode("ascii").split(" ")
        if command not in codec.COMMANDS:
            return codec.encode_error("ES")
        if arguments:
            return codec.encode_error("EL")
        with self.cell.lock:
            self.cell.advance(now_s)
            return self._execute(command, now_s)

    def error_reply(self, line: bytes) -> bytes:
        return codec.encode_error("EL")

    def tick(self, now_s: float) -> bytes:
        if self._pending is None:
            with self.cell.lock:
                self.cell.advance(now_s)
            return b""
        with self.cell.lock:
            self.cell.advance(now_s)
            command, give_up_s = self._pending
            if self.cell.stable:
                self._pending = None
                reply = self._stable_action(command)
            elif now_s >= give_up_s:
                self._pending = None
                LOG.info(
                    "balance simulator: no stability within %.1f s, %s I", self.stability_timeout_s, command
                )
                reply = codec.encode_status_reply(command, "I")
            else:
                return b""
        return self.faults.distort(reply) or b""

    def stop_all(self) -> None:
        self._pending = None

    # ------------------------------------------------------------------ commands
    def _execute(self, command: str, now_s: float) -> bytes:
        if command in ("@", "I2", "I3", "I4"):
            return self._information(command)
        cell, reply_id = self.cell, "S" if command == "SI" else command
        refusal = "I" if self._pending is not None else self._range_error(command)
        if refusal:
            return codec.encode_status_reply(reply_id, refusal)
        if command == "SI":
            return self._weight("S", cell.net_kg, cell.stable)
        if cell.stable:
            return self._stable_action(command)
        self._pending = (command, now_s + self.stability_timeout_s)
        return b""

    def _information(self, command: str) -> bytes:
        """``@`` (cancel and clear the tare), ``I2``, ``I3``, ``I4``: answered at once, even while S waits."""
        identity = self.identity
        if command == "@":
            self._pending = None
            self.cell.clear_tare()
        if command == "I2":
            capacity = identity.capacity_kg / codec.UNIT_KG[self.unit]
            return codec.encode_text_reply("I2", f"{identity.model} {capacity:.{self.decimals}f} {self.unit}")
        if command == "I3":
            return codec.encode_text_reply("I3", identity.firmware)
        return codec.encode_text_reply("I4", identity.serial)

    def _range_error(self, command: str) -> str:
        """``+`` / ``-`` when the load is outside the range of ``command``, else ""."""
        gross, power_on = self.cell.gross_kg, self.cell.power_on_gross_kg
        if gross > self.identity.capacity_kg:
            return "+"
        if command in ("S", "SI") and power_on < -self.zero_range_kg:
            return "-"
        if command == "Z" and abs(power_on) > self.zero_range_kg:
            return "+" if power_on > 0 else "-"
        if command == "T" and gross < 0.0:
            return "-"
        return ""

    def _stable_action(self, command: str) -> bytes:
        if command == "Z":
            self.cell.zero()
            return codec.encode_status_reply("Z", "A")
        if command == "T":
            return self._weight("T", self.cell.tare(), True)
        return self._weight("S", self.cell.net_kg, True)

    def _weight(self, identifier: str, mass_kg: float, stable: bool) -> bytes:
        value = mass_kg / codec.UNIT_KG[self.unit]
        return codec.encode_weight_reply(identifier, stable, value, self.unit, self.decimals)  # type: ignore[arg-type]

"""The dispensing station simulated: an MT-SICS balance and a bus of dosing heads on one world.

Powder leaves a head's hopper (the twin's :class:`~tablet_workcell.twin.dosing.Feeder`:
noisy flow, mass in flight for the fall time) and lands on the one balance pan (the
twin's :class:`~tablet_workcell.twin.dosing.Balance`: settling, noise, drift, readability,
stability), so the balance port sees exactly what the heads' port was told to feed. The
world advances in fixed steps to the instruments' clock (``now_s``, scaled by the
server's time scale); both ports' threads share it under one lock.

    python -m tablet_workcell.devices.serve dispensing_station --time-scale 5 \\
        --option heads=lactose:5000,mcc:3000 --option jam=mcc:12 --option seed=3

Options (strings, as from the command line): ``seed``; ``heads`` = ``powder:hopper_mg``
per head, addresses 01, 02... in order; ``jam`` = ``powder:after_mg`` (that head jams
once it has fed that much); ``max_rate_mg_s``, ``flow_variation``, ``fall_time_s``,
``settling_time_s``, ``noise_mg``, ``container_g``, ``unit`` (g or mg),
``stability_timeout_s``, ``dt_s``. An empty hopper is ``heads=lactose:0``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tablet_workcell.devices.balance.simulator import MtSicsBalanceSimulator
from tablet_workcell.devices.dosing import codec
from tablet_workcell.devices.errors import DeviceProtocolError
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument
from tablet_workcell.errors import ConfigError
from tablet_workcell.twin.dosing import Balance, BalanceSettings, Feeder, FeederSettings

LOG = logging.getLogger(__name__)
EMPTY_KG = 1e-9  # the hopper's level sensor reports empty below this


@dataclass
class Head:
    """One dosing head's state machine around its twin feeder."""

    address: int
    powder: str
    feeder: Feeder
    jam_after_kg: float | None
    initial_hopper_kg: float
    fraction: float = 0.0  # commanded share of the maximum rate
    state: str = "I"  # I idle, F feeding, E error
    error_code: str = "00"

    @property
    def total_fed_kg(self) -> float:
        return self.initial_hopper_kg - self.feeder.hopper_mass_kg

    @property
    def max_rate_mg_per_s(self) -> float:
        return self.feeder.settings.max_rate_kg_per_s * 1e6

    def fault(self, code: str) -> None:
        self.fraction, self.state, self.error_code = 0.0, "E", code
        LOG.info("dosing head %02d (%s): error E%s", self.address, self.powder, code)

    def check(self) -> None:
        """The head's own sensors: level (empty hopper) and motor current (jam)."""
        if self.state != "F":
            return
        if self.feeder.hopper_mass_kg <= EMPTY_KG:
            self.fault("10")
        elif self.jam_after_kg is not None and self.total_fed_kg >= self.jam_after_kg:
            self.fault("11")


@dataclass
class DispensingWorld:
    """Heads feeding onto one balance pan, stepped at ``dt_s`` of instrument time."""

    heads: dict[int, Head]
    balance: Balance
    container_kg: float
    dt_s: float
    lock: threading.RLock = field(default_factory=threading.RLock)
    time_s: float = 0.0
    landed_kg: float = 0.0
    _raw_kg: float = 0.0  # reading since switching on
    _zero_kg: float = 0.0
    _tare_kg: float = 0.0

    def __post_init__(self) -> None:
        settled_s = 30.0 * self.balance.settings.settling_time_s + self.balance.settings.stable_window_s
        for _ in range(round(settled_s / self.dt_s)):  # the container has been on the pan for a while
            self._raw_kg = self.balance.step(self.container_kg)

    def advance(self, now_s: float) -> None:
        with self.lock:
            while self.time_s + self.dt_s <= now_s:
                self.time_s += self.dt_s
                for head in self.heads.values():
                    self.landed_kg += head.feeder.step(head.fraction)
                    head.check()
                self._raw_kg = self.balance.step(self.container_kg + self.landed_kg)

    def _quantise(self, mass_kg: float) -> float:
        step = self.balance.settings.readability_kg
        return round(mass_kg / step) * step

    @property
    def net_kg(self) -> float:
        return self._quantise(self._raw_kg - self._zero_kg - self._tare_kg)

    @property
    def gross_kg(self) -> float:
        return self._quantise(self._raw_kg - self._zero_kg)

    @property
    def power_on_gross_kg(self) -> float:
        return self._raw_kg

    @property
    def stable(self) -> bool:
        return self.balance.stable

    def zero(self) -> None:
        self._zero_kg, self._tare_kg = self._raw_kg, 0.0

    def tare(self) -> float:
        self._tare_kg = self.gross_kg
        return self._tare_kg

    def clear_tare(self) -> None:
        self._tare_kg = 0.0


class DosingBusSimulator(SimulatedInstrument):
    """The heads' side of the bus protocol; silent to frames it cannot attribute, as a bus node is."""

    name = "dosing"

    def __init__(self, world: DispensingWorld, faults: FaultSettings | None = None) -> None:
        super().__init__(faults)
        self.world = world

    def handle_line(self, line: bytes, now_s: float) -> bytes:
        try:
            request = codec.parse_request(line)
        except DeviceProtocolError as error:
            head = self._addressed_head(line)
            if error.code == "CRC" and head is not None:
                return codec.encode_error_reply(head.address, self._command_word(line), "04")
            return b""
        with self.world.lock:
            self.world.advance(now_s)
            if request.address == codec.BROADCAST:
                if request.command == "STP":
                    self.stop_all()
                return b""
            head = self.world.heads.get(request.address)
            return b"" if head is None else self._execute(head, request)

    def error_reply(self, line: bytes) -> bytes:
        head = self._addressed_head(line)
        return b"" if head is None else codec.encode_error_reply(head.address, self._command_word(line), "08")

    def tick(self, now_s: float) -> bytes:
        self.world.advance(now_s)
        return b""

    def stop_all(self) -> None:
        with self.world.lock:
            for head in self.world.heads.values():
                head.fraction = 0.0
                if head.state == "F":
                    head.state = "I"

    def _addressed_head(self, line: bytes) -> Head | None:
        digits = line[1:3]
        if line[:1] != b">" or not digits.isdigit():
            return None
        return self.world.heads.get(int(digits))

    @staticmethod
    def _command_word(line: bytes) -> str:
        word = line[4:].split(b"*")[0].split(b" ")[0].decode("ascii", errors="replace")
        return word if word in codec.COMMANDS else "?"

    def _execute(self, head: Head, request: codec.Request) -> bytes:
        address, command, args = head.address, request.command, request.args
        if command not in codec.COMMANDS:
            return codec.encode_error_reply(address, command, "01")
        if command == "RUN":
            return self._run(head, args)
        if args:
            return codec.encode_error_reply(address, command, "02")
        if command == "STP":
            head.fraction = 0.0
            head.state = "E" if head.state == "E" else "I"
        elif command == "CLR" and head.state == "E":  # the cause may persist: the next RUN finds it again
            head.state, head.error_code = "I", "00"
        return codec.encode_reply(address, command, self._fields(head, command))

    @staticmethod
    def _fields(head: Head, command: str) -> tuple[str, ...]:
        if command == "IDN":
            max_rate = f"{head.max_rate_mg_per_s:.2f}"
            return ("DH-20-SIM", f"SN-{head.address:04d}", "1.3.0", head.powder, max_rate)
        if command == "STA":
            return (
                head.state,
                f"{head.fraction * head.max_rate_mg_per_s:.2f}",
                f"{head.feeder.hopper_mass_kg * 1e6:.2f}",
                f"{head.total_fed_kg * 1e6:.2f}",
                head.error_code,
            )
        return ()

    def _run(self, head: Head, args: tuple[str, ...]) -> bytes:
        address = head.address
        try:
            rate, unit = float(args[0]), args[1]
        except (ValueError, IndexError):
            return codec.encode_error_reply(address, "RUN", "02")
        if len(args) != 2 or unit not in codec.RATE_UNITS or math.isnan(rate):
            return codec.encode_error_reply(address, "RUN", "02")
        fraction = rate / 100.0 if unit == "PCT" else rate / head.max_rate_mg_per_s
        if not 0.0 <= fraction <= 1.0:
            return codec.encode_error_reply(address, "RUN", "03")
        if head.state == "E":
            return codec.encode_error_reply(address, "RUN", "05")
        head.fraction, head.state = fraction, ("F" if fraction > 0 else "I")
        head.check()
        if head.state == "E":
            return codec.encode_error_reply(address, "RUN", head.error_code)
        return codec.encode_reply(address, "RUN", (f"{fraction * head.max_rate_mg_per_s:.2f}",))


# ---------------------------------------------------------------------- options and factory
DEFAULTS: dict[str, str] = {
    "seed": "0",
    "heads": "lactose:5000",
    "jam": "",
    "max_rate_mg_s": "20",
    "flow_variation": "0.15",
    "fall_time_s": "0.15",
    "settling_time_s": "0.3",
    "noise_mg": "0.01",
    "container_g": "2.0",
    "unit": "g",
    "stability_timeout_s": "5.0",
    "dt_s": "0.005",
}


def _pairs(text: str, option: str) -> dict[str, float]:
    pairs: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition(":")
        try:
            pairs[name] = float(value) if sep else 0.0
        except ValueError:
            raise ConfigError(
                f"option {option}={text!r}: {value!r} of {name!r} is not a number of mg."
            ) from None
        if not name or pairs[name] < 0:
            raise ConfigError(f"option {option}={text!r}: write powder:mg with mg >= 0, e.g. lactose:5000.")
    return pairs


def build_world(options: Mapping[str, Any]) -> tuple[DispensingWorld, dict[str, str]]:
    """The shared world from string options (ConfigError names the option and the fix)."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown dispensing_station option(s) {unknown}; known: {sorted(DEFAULTS)}.")
    raw = {**DEFAULTS, **{key: str(value) for key, value in options.items()}}
    numbers: dict[str, float] = {}
    for key in set(DEFAULTS) - {"heads", "jam", "unit", "seed"}:
        try:
            numbers[key] = float(raw[key])
        except ValueError:
            raise ConfigError(f"option {key}={raw[key]!r} must be a number.") from None
        if not numbers[key] >= 0:
            raise ConfigError(f"option {key}={raw[key]!r} must be 0 or more.")
    if not raw["seed"].isdigit():
        raise ConfigError(f"option seed={raw['seed']!r} must be a whole number >= 0.")
    if numbers["dt_s"] <= 0 or numbers["max_rate_mg_s"] <= 0:
        raise ConfigError("options dt_s and max_rate_mg_s must be more than 0.")
    hoppers, jams = _pairs(raw["heads"], "heads"), _pairs(raw["jam"], "jam")
    if not hoppers or len(hoppers) > codec.MAX_ADDRESS:
        raise ConfigError(f"option heads={raw['heads']!r} must name 1 to {codec.MAX_ADDRESS} powders.")
    if set(jams) - set(hoppers):
        raise ConfigError(f"option jam names {sorted(set(jams) - set(hoppers))}, which no head holds.")
    if raw["unit"] not in ("g", "mg"):
        raise ConfigError(f"option unit={raw['unit']!r} must be g or mg.")
    seeds = np.random.SeedSequence(int(raw["seed"])).spawn(len(hoppers) + 1)
    dt = numbers["dt_s"]
    heads: dict[int, Head] = {}
    for address, (powder, hopper_mg) in enumerate(hoppers.items(), start=1):
        settings = FeederSettings(
            max_rate_kg_per_s=numbers["max_rate_mg_s"] * 1e-6,
            flow_variation=numbers["flow_variation"],
            fall_time_s=numbers["fall_time_s"],
            hopper_mass_kg=hopper_mg * 1e-6,
        )
        feeder = Feeder(settings, np.random.default_rng(seeds[address]), dt)
        jam = jams[powder] * 1e-6 if powder in jams else None
        heads[address] = Head(address, powder, feeder, jam, hopper_mg * 1e-6)
    balance_settings = BalanceSettings(
        noise_kg=numbers["noise_mg"] * 1e-6, settling_time_s=numbers["settling_time_s"]
    )
    balance = Balance(balance_settings, np.random.default_rng(seeds[0]), dt)
    return DispensingWorld(heads, balance, numbers["container_g"] * 1e-3, dt), raw


def make_simulators(options: Mapping[str, Any], faults: FaultSettings) -> dict[str, SimulatedInstrument]:
    """``{"balance": MT-SICS balance, "feeder": dosing-head bus}`` sharing one world."""
    world, raw = build_world(options)
    balance = MtSicsBalanceSimulator(
        world, faults, unit=raw["unit"], stability_timeout_s=float(raw["stability_timeout_s"])
    )
    return {"balance": balance, "feeder": DosingBusSimulator(world, faults)}

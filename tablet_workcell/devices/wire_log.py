"""Read the simulators' wire logs: when did each instrument receive its stop command?

With ``TABLET_WORKCELL_WIRE_LOG_DIR`` set, every simulated port appends the host's bytes
with their CLOCK_MONOTONIC time to ``<dir>/<port>.wire`` (one line: ``time name hex``).
The clock is shared by every process on the machine, so a test or benchmark can compare
the time it sent an e-stop with the time each instrument got its stop command.
"""

from __future__ import annotations

from pathlib import Path

#: simulated port -> the bytes that stop that instrument (Marlin quickstop/kill, STP frames)
STOP_TOKENS: dict[str, tuple[bytes, ...]] = {
    "arm": (b"M410", b"M112"),
    "press": (b"STP",),
    "feeder": (b"STP",),
    "syringe_pump": (b"STP",),
}
#: simulated port -> the station that owns it
PORT_STATION = {"arm": "arm", "press": "press", "feeder": "dispenser", "syringe_pump": "syringe_pump"}


def command_times(path: Path, tokens: tuple[bytes, ...], after: float = 0.0) -> list[float]:
    """Monotonic times at which the host's bytes containing any of ``tokens`` arrived, from ``after`` on."""
    if not path.exists():
        return []
    times = []
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) != 3 or len(parts[2]) % 2:
            continue  # a line being written right now
        try:
            stamp, data = float(parts[0]), bytes.fromhex(parts[2])
        except ValueError:
            continue
        if stamp >= after and any(token in data for token in tokens):
            times.append(stamp)
    return times


def stop_times(folder: Path, after: float) -> dict[str, float]:
    """Per station: the monotonic time its first stop command at or after ``after`` arrived."""
    found: dict[str, float] = {}
    for port, tokens in STOP_TOKENS.items():
        times = command_times(folder / f"{port}.wire", tokens, after)
        if times:
            found[PORT_STATION[port]] = times[0]
    return found

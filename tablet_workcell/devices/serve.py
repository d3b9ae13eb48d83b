"""Run instrument simulators as their own process, each instrument on a pseudo-terminal.

    python -m tablet_workcell.devices.serve balance --link-dir /tmp/cell \
        --option seed=3 --fault drop_probability=0.1

prints one ``PORT <instrument> <path>`` line per port, then ``READY``, and serves until
SIGTERM/SIGINT. One simulator may serve several ports that share physics: the dispensing
station's balance and dosing heads see the same powder fall.

An instrument that is not a serial device (the disintegration station's camera streams
MJPEG over HTTP) is a :class:`NetworkInstrument`: it serves itself, and its ``PORT`` line
carries its URL (``PORT camera http://127.0.0.1:40123/stream.mjpg``). With ``--link-dir``
the URL is also written to ``<dir>/<port name>.url``, so a graph description can name it
(``{ports}/camera.url``) before the free port is known.

Simulators are looked up in :data:`SIMULATORS` by name; their modules are imported
only here, never on the hardware path.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.pty_server import PtyServer
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument
from tablet_workcell.errors import ConfigError

LOG = logging.getLogger("tablet_workcell.devices.serve")
#: when set, a folder where every port logs the host's bytes with their monotonic time
WIRE_LOG_ENV = "TABLET_WORKCELL_WIRE_LOG_DIR"

#: simulator name -> "module:factory"; the factory is ``(options, faults) -> {port name: instrument}``
SIMULATORS: dict[str, str] = {
    "dispensing_station": "tablet_workcell.devices.dosing.simulator:make_simulators",  # balance + feeders
    "syringe_pump": "tablet_workcell.devices.syringe_pump.simulator:make_simulators",
    # syringe pump (pty) + camera (MJPEG over HTTP) filming the droplet the pump places
    "disintegration_station": "tablet_workcell.devices.camera.simulator:make_simulators",
    "press": "tablet_workcell.devices.press.simulator:make_simulators",
    "arm": "tablet_workcell.devices.arm.simulator:make_simulators",
}


class NetworkInstrument(Protocol):
    """An instrument reached over the network rather than a serial line (a camera's stream)."""

    name: str
    disconnected: threading.Event  # set when it went away (an injected unplug)

    def start(self, time_scale: float = 1.0, link_dir: Path | None = None) -> str:
        """Start serving; return the URL a client opens."""

    def stop(self) -> None: ...


class SimulatorFactory(Protocol):
    def __call__(
        self, options: Mapping[str, Any], faults: FaultSettings
    ) -> Mapping[str, SimulatedInstrument | NetworkInstrument]: ...


def load_factory(name: str) -> SimulatorFactory:
    if name not in SIMULATORS:
        raise ConfigError(f"no simulator called {name!r}; known: {', '.join(sorted(SIMULATORS)) or 'none'}.")
    module_name, _, attribute = SIMULATORS[name].partition(":")
    factory: SimulatorFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


def _announce(line: str) -> None:
    """The start-up protocol on stdout that :class:`SimulatorProcess` reads."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {pair!r} must look like name=value.")
        parsed[key.strip()] = value.strip()
    return parsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("simulator", help="simulator name")
    parser.add_argument("--link-dir", type=Path, help="also create <dir>/<port name> symlinks to the ptys")
    parser.add_argument("--option", action="append", default=[], help="simulator option name=value")
    parser.add_argument("--fault", action="append", default=[], help="fault setting name=value")
    parser.add_argument("--time-scale", type=float, default=1.0, help="instrument seconds per wall second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        faults = FaultSettings.from_mapping(_parse_pairs(args.fault, "fault"))
        instruments = load_factory(args.simulator)(_parse_pairs(args.option, "option"), faults)
    except (ConfigError, ValueError) as error:
        LOG.error("%s", error)
        return 2
    if args.link_dir is not None:
        args.link_dir.mkdir(parents=True, exist_ok=True)
    servers: list[PtyServer | NetworkInstrument] = []
    for port_name, instrument in instruments.items():
        if not isinstance(instrument, SimulatedInstrument):
            url = instrument.start(args.time_scale, args.link_dir)
            servers.append(instrument)
            if args.link_dir is not None:
                _write_locator(args.link_dir / f"{port_name}.url", url)
            _announce(f"PORT {port_name} {url}")
            continue
        link = args.link_dir / port_name if args.link_dir is not None else None
        wire_log = (
            Path(os.environ[WIRE_LOG_ENV]) / f"{port_name}.wire" if os.environ.get(WIRE_LOG_ENV) else None
        )
        pty = PtyServer(instrument, link=link, time_scale=args.time_scale, wire_log=wire_log)
        servers.append(pty)
        _announce(f"PORT {port_name} {pty.start()}")
    _announce("READY")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        if all(server.disconnected.is_set() for server in servers):
            break
    for server in servers:
        server.stop()
    if args.link_dir is not None:
        for port_name, instrument in instruments.items():
            if not isinstance(instrument, SimulatedInstrument):
                (args.link_dir / f"{port_name}.url").unlink(missing_ok=True)
    return 0


def _write_locator(path: Path, url: str) -> None:
    """``<link dir>/<port>.url``: the URL of a network instrument, replaced atomically."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(url + "\n", encoding="utf-8")
    os.replace(partial, path)


if __name__ == "__main__":
    sys.exit(main())

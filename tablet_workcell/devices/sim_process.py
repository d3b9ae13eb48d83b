"""Start and stop a simulator process from Python (tests, the launcher in sim mode).

The simulator runs as ``python -m tablet_workcell.devices.serve`` in its own process,
as an instrument is its own machine; this module only spawns it and reads the ports it
prints, so nothing on the hardware path imports a simulator.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tablet_workcell.devices.errors import DeviceError


class SimulatorStartError(DeviceError):
    """The simulator process did not come up (bad option, crash)."""


class SimulatorProcess:
    """``with SimulatorProcess("balance") as sim: sim.ports["balance"]``; always stopped on exit."""

    def __init__(
        self,
        simulator: str,
        options: Mapping[str, Any] | None = None,
        faults: Mapping[str, Any] | None = None,
        link_dir: Path | None = None,
        time_scale: float = 1.0,
        start_timeout_s: float = 20.0,
    ) -> None:
        self.simulator = simulator
        self.command = [sys.executable, "-m", "tablet_workcell.devices.serve", simulator]
        for key, value in (options or {}).items():
            self.command += ["--option", f"{key}={value}"]
        for key, value in (faults or {}).items():
            self.command += ["--fault", f"{key}={value}"]
        if link_dir is not None:
            self.command += ["--link-dir", str(link_dir)]
        self.command += ["--time-scale", str(time_scale)]
        self.start_timeout_s = start_timeout_s
        self.ports: dict[str, str] = {}
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None  # the simulator's stderr while it runs (see log_tail)
        self._final_log = ""

    def start(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=self._open_log(), text=True, env=env
        )
        assert self._process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.start_timeout_s
        # Raw reads, not readline(): the text wrapper would buffer a second line (READY
        # right after PORT) where select() no longer sees it, and wait out the deadline.
        fd, pending = self._process.stdout.fileno(), b""
        try:
            while time.monotonic() < deadline:
                if b"\n" not in pending:
                    if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                        continue
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        break
                    pending += chunk
                    continue
                raw, _, pending = pending.partition(b"\n")
                line = raw.decode(errors="replace")
                if line.startswith("PORT "):
                    _, name, path = line.split(maxsplit=2)
                    self.ports[name] = path.strip()
                elif line.strip() == "READY":
                    return self.ports
        finally:
            selector.close()
        error = self._stderr_tail()
        self.stop()
        raise SimulatorStartError(self.simulator, f"simulator process did not start: {error or 'no output'}")

    def _stderr_tail(self) -> str:
        if self._process is None:
            return ""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=0.5)
        return self.log_tail()

    def _open_log(self) -> IO[bytes]:
        self._close_log()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process; closed in stop()
        return self._log

    def _close_log(self) -> None:
        if self._log is not None:
            self._final_log = self.log_tail(characters=20000)
            self._log.close()
            self._log = None

    def log_tail(self, characters: int = 2000) -> str:
        """The end of the simulator's log (its stderr goes to a file: a pipe nobody
        reads would fill up and block a simulator that logs a lot)."""
        if self._log is None:
            return self._final_log[-characters:]
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-characters:].strip()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if process.stdout is not None:
            process.stdout.close()
        self._close_log()

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

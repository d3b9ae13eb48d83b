"""A throwaway PostgreSQL server on loopback, for tests, benchmarks and local trials.

Uses Debian's PostgreSQL binaries (``apt-get install postgresql``; `make setup` installs
them when missing and root). PostgreSQL refuses to run as root, so when this process is
root the server runs as the ``postgres`` system user in a private temporary directory.
The server listens on 127.0.0.1 only, on a free port, with trust authentication for a
single database user; it is stopped and its files removed by :meth:`stop` (use it as a
context manager so that happens on failure too).
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tablet_workcell.errors import WorkcellError

LOG = logging.getLogger(__name__)
START_TIMEOUT_S = 60


class PostgresUnavailableError(WorkcellError):
    """PostgreSQL binaries are missing or the server could not start."""


def _bindir() -> Path:
    override = os.environ.get("TABLET_WORKCELL_PG_BINDIR")
    candidates = [override] if override else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise PostgresUnavailableError(
        "PostgreSQL server binaries were not found (looked in /usr/lib/postgresql/*/bin); install them with "
        "`apt-get install postgresql` (make setup does this as root) or set TABLET_WORKCELL_PG_BINDIR."
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalPostgres:
    """Start with :meth:`start` (or ``with LocalPostgres() as server``); ``server.url`` to connect."""

    def __init__(self, user: str = "workcell") -> None:
        self.user = user
        self.port = 0
        self._bindir = _bindir()
        self._base: Path | None = None
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailableError(
                    "running as root, and there is no 'postgres' system user to run the server as; "
                    "install Debian's postgresql package, which creates it."
                ) from None
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        if self._base is None:
            raise PostgresUnavailableError("the server has not been started")
        return self._base / "data"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self._bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
            **self._run_as,
        )
        if result.returncode != 0:
            raise PostgresUnavailableError(
                f"{args[0]} failed: {(result.stderr or result.stdout).strip()[-800:]}"
            )

    def start(self) -> LocalPostgres:
        if self._base is None:
            self._base = Path(tempfile.mkdtemp(prefix="workcell-pg-"))
            self._base.chmod(0o755)
            if self._run_as:
                os.chown(self._base, self._run_as["user"], self._run_as["group"])
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        self.port = self.port or _free_port()
        options = f"-p {self.port} -h 127.0.0.1 -k {self._base} -c fsync=on -c max_connections=50"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self._base / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )
        LOG.info("PostgreSQL running on 127.0.0.1:%d (%s)", self.port, self.data_dir)
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop the server (fast shutdown); remove its files unless ``remove`` is False."""
        if self._base is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")
            except (PostgresUnavailableError, subprocess.TimeoutExpired) as error:
                LOG.warning("stopping PostgreSQL: %s", error)
        if remove:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

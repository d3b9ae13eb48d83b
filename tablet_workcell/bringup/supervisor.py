"""Start, watch and stop the node processes of a graph (the ``workcell up`` engine).

Design choices:

* Each node is its own process group, so a Ctrl-C in the terminal reaches the
  supervisor only; the supervisor then stops the nodes in reverse start order with
  SIGINT (rclpy's clean shutdown), escalating to SIGTERM and SIGKILL after timeouts.
  Nothing is left running, also when the supervisor itself fails.
* Output of every node is relayed line by line with the node name in front, and the
  last lines are kept so an unexpected exit can be explained in one message.
* A node that exits on its own is a fault of the graph: the supervisor stops the rest
  and reports which node ended, its exit code and its last words.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

from tablet_workcell.bringup.processes import ProcessSpec
from tablet_workcell.errors import LaunchError

logger = logging.getLogger(__name__)

STOP_SEQUENCE = ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0))
TAIL_LINES = 20

LineSink = Callable[[str, str], None]


def _log_line(name: str, line: str) -> None:
    logger.info("[%s] %s", name, line)


@dataclass
class RunningNode:
    spec: ProcessSpec
    process: subprocess.Popen[str]
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None


class GraphSupervisor:
    """Runs a list of node processes as one unit. Use as a context manager."""

    def __init__(self, specs: Sequence[ProcessSpec], line_sink: LineSink = _log_line) -> None:
        self._specs = list(specs)
        self._sink = line_sink
        self._running: list[RunningNode] = []

    def __enter__(self) -> GraphSupervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int]:
        return {node.spec.name: node.process.pid for node in self._running}

    def start(self) -> None:
        try:
            for spec in self._specs:
                self._running.append(self._spawn(spec))
                logger.info("started %s (pid %d)", spec.name, self._running[-1].process.pid)
        except OSError as error:
            self.stop()
            raise LaunchError(f"could not start node process: {error}") from error

    def _spawn(self, spec: ProcessSpec) -> RunningNode:
        process = subprocess.Popen(
            spec.argv,
            env=spec.environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        node = RunningNode(spec, process)
        node.reader = threading.Thread(
            target=self._relay, args=(node,), name=f"relay-{spec.name}", daemon=True
        )
        node.reader.start()
        return node

    def _relay(self, node: RunningNode) -> None:
        stream: IO[str] | None = node.process.stdout
        if stream is None:
            return
        for raw in stream:
            line = raw.rstrip("\n")
            node.tail.append(line)
            self._sink(node.spec.name, line)

    def exited(self) -> list[RunningNode]:
        """Nodes whose process has ended."""
        return [node for node in self._running if node.process.poll() is not None]

    def watch(self, duration_s: float | None = None, poll_s: float = 0.2) -> None:
        """Block until ``duration_s`` elapsed (None: forever) or a node exits.

        Raises LaunchError naming the node when one ends on its own.
        """
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            ended = self.exited()
            if ended:
                raise LaunchError(self.describe_exit(ended[0]))
            time.sleep(poll_s)

    @staticmethod
    def describe_exit(node: RunningNode) -> str:
        if node.reader is not None:
            node.reader.join(timeout=1.0)
        code = node.process.returncode
        last = "\n    ".join(node.tail) or "(no output)"
        return f"node '{node.spec.name}' exited unexpectedly with code {code}. Its last output:\n    {last}"

    def stop(self) -> None:
        """Stop every node, newest first; never raises, never leaves a process behind."""
        for node in reversed(self._running):
            self._stop_one(node)
        for node in self._running:
            if node.reader is not None:
                node.reader.join(timeout=2.0)
            if node.process.stdout is not None:
                node.process.stdout.close()
        self._running.clear()

    def _stop_one(self, node: RunningNode) -> None:
        for sig, timeout_s in STOP_SEQUENCE:
            if node.process.poll() is not None:
                return
            try:
                os.killpg(node.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                node.process.wait(timeout=timeout_s)
                return
            except subprocess.TimeoutExpired:
                logger.warning("node %s ignored %s for %.0f s", node.spec.name, sig.name, timeout_s)
        logger.error("node %s (pid %d) could not be stopped", node.spec.name, node.process.pid)

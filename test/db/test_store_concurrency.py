"""The store against real databases: PostgreSQL on loopback, crashes and concurrent cells.

Every server and writer process a test starts is stopped by the test, also on failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tablet_workcell.data.local_postgres import LocalPostgres
from tablet_workcell.data.store import ExperimentStore, StoreUnavailableError
from tablet_workcell.data.synthetic import twin_record

WRITER = Path(__file__).resolve().parent / "cell_writer.py"
IR_BLEND = {"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    with LocalPostgres() as server:
        yield server


def writer(url: str, campaign: str, cell: str, count: int, extra: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), url, campaign, cell, str(count), str(extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_round_trip_on_postgresql(postgres: LocalPostgres) -> None:
    with ExperimentStore.open(postgres.url) as store:
        store.ensure_campaign("pg-round-trip")
        store.record_experiment(twin_record("pg-round-trip", 1, IR_BLEND, 150e6, seed=0))
        [experiment] = store.experiments("pg-round-trip")
        assert experiment.measurements["tensile_strength_pa"][1] == "Pa"
        assert store.schema_revision() == "0001"


def test_two_cells_write_one_postgresql_store_concurrently(postgres: LocalPostgres) -> None:
    cells = [writer(postgres.url, f"multi-{cell}", cell, 25) for cell in ("cell-a", "cell-b")]
    try:
        outputs = [process.communicate(timeout=240) for process in cells]
    finally:
        for process in cells:
            process.kill()
    for process, (_, errors) in zip(cells, outputs, strict=True):
        assert process.returncode == 0, errors
    with ExperimentStore.open(postgres.url) as store:
        for cell in ("cell-a", "cell-b"):
            experiments = store.experiments(f"multi-{cell}")
            assert [e.sequence for e in experiments] == list(range(1, 26))
        summaries = {c.id: c for c in store.campaigns()}
        assert summaries["multi-cell-a"].cell_id == "cell-a" and summaries["multi-cell-b"].cell_id == "cell-b"


def kill_mid_transaction(url: str, campaign: str) -> None:
    """Start a writer of long transactions and kill -9 it after its second commit."""
    process = writer(url, campaign, "crashing-cell", 1000, extra=3000)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        commits = 0
        while commits < 2 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            commits += line.startswith("committed")
        assert commits == 2, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)  # well inside the next transaction (each takes a few hundred ms)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_transaction_leaves_only_whole_experiments(
    backend: str, postgres: LocalPostgres, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.sqlite'}" if backend == "sqlite" else postgres.url
    campaign = f"crash-{backend}"
    kill_mid_transaction(url, campaign)
    with ExperimentStore.open(url) as store:
        experiments = store.experiments(campaign)
        assert len(experiments) >= 2
        for experiment in experiments:
            assert len(experiment.measurements) == 3000 + 11, experiment.id  # whole, never partial
            assert sum(experiment.recipe.values()) == pytest.approx(1.0)


def test_database_going_away_is_reported_and_recovered_from() -> None:
    server = LocalPostgres().start()
    try:
        store = ExperimentStore.open(server.url)
        store.ensure_campaign("flaky")
        store.record_experiment(twin_record("flaky", 1, IR_BLEND, 150e6, seed=0))
        server.stop(remove=False)
        with pytest.raises(
            StoreUnavailableError,
            match=r"unavailable .* Nothing of experiment flaky-0002 was "
            r"written\. Pause the campaign",
        ):
            store.record_experiment(twin_record("flaky", 2, IR_BLEND, 150e6, seed=1))
        server.start()
        store.record_experiment(twin_record("flaky", 2, IR_BLEND, 150e6, seed=1))
        assert [e.sequence for e in store.experiments("flaky")] == [1, 2]
        store.close()
    finally:
        server.stop()

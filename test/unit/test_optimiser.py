"""The optimiser library: config errors, exact mixtures, told-result checks, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tablet_workcell.data.records import ComponentRecord, ExperimentRecord, MeasurementRecord
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.errors import ConfigError
from tablet_workcell.optim.config import OptimiserConfig, load_config, parse_config
from tablet_workcell.optim.from_store import rebuild_from_store
from tablet_workcell.optim.optimizer import Suggestion
from tablet_workcell.optim.problem import ObservationError
from tablet_workcell.twin.experiment import ExperimentSpec, simulate_experiment

REPO = Path(__file__).resolve().parents[2]


def config(**changes: Any) -> OptimiserConfig:
    base = load_config(REPO / "config" / "optimiser.yaml")
    return OptimiserConfig(
        base.problem,
        changes.get("strategy", base.strategy),
        changes.get("seed", 1),
        changes.get("initial_design", 4),
    )


def run_twin(suggestion: Suggestion, seed: int) -> tuple[dict[str, float], bool]:
    truth = simulate_experiment(
        ExperimentSpec(
            suggestion.point.fractions,
            compaction_pressure_pa=suggestion.point.process["compaction_pressure_pa"],
        ),
        seed,
    )
    failed = bool(truth.observables["capped"])
    return {k: v for k, v in truth.observables.items() if np.isfinite(v)}, failed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategi": "gp_ei"}, "unknown key 'strategi'. Did you mean 'strategy'"),
        ({"strategy": "magic"}, "strategy 'magic' is unknown"),
        ({"fixed": {"magnesium_stearate": 1.5}}, "a fixed fraction lies strictly in 0..1"),
        (
            {"mixture": {"mcc": {"low": 0.6}, "lactose_monohydrate": {"low": 0.5}}},
            "lower bounds add to 1.100",
        ),
        ({"objectives": []}, "no objective"),
        ({"constraints": [{"name": "x", "at_least": 1, "at_most": 2}]}, "exactly one of at_least / at_most"),
        ({"process": {"p": {"low": 5, "high": 1}}}, "are not an interval"),
        ({"process": {"p": {"low": "five", "high": 1}}}, "'five' is not a number"),
    ],
)
def test_bad_configs_are_rejected_with_the_reason(change: dict[str, Any], message: str) -> None:
    import yaml  # noqa: PLC0415

    data = yaml.safe_load((REPO / "config" / "optimiser.yaml").read_text())
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_suggestions_are_exact_mixtures_within_bounds_with_predictions() -> None:
    optimizer = config().optimizer("c")
    for round_ in range(4):
        for suggestion in optimizer.ask(2):
            fractions = suggestion.point.fractions
            assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-12)
            assert 0.2 - 1e-12 <= fractions["microcrystalline_cellulose"] <= 0.9 + 1e-12
            assert fractions["magnesium_stearate"] == 0.01
            disintegrant = suggestion.point.choices["disintegrant"]
            assert 0.0 <= fractions[disintegrant] <= 0.08 + 1e-12
            assert 50e6 <= suggestion.point.process["compaction_pressure_pa"] <= 300e6
            if round_ >= 2:
                assert suggestion.strategy == "gp_ei"
                assert "tensile_strength_pa" in suggestion.predictions
                assert 0.0 <= suggestion.probability_feasible <= 1.0
            values, failed = run_twin(suggestion, round_)
            optimizer.tell(suggestion.experiment_id, values, failed=failed)


def test_bad_told_results_are_rejected() -> None:
    optimizer = config().optimizer("c")
    [suggestion] = optimizer.ask()
    with pytest.raises(ObservationError, match="never suggested"):
        optimizer.tell("c-9999", {"tensile_strength_pa": 1.0, "disintegration_time_s": 1.0})
    with pytest.raises(ObservationError, match="are not finite"):
        optimizer.tell(
            suggestion.experiment_id, {"tensile_strength_pa": float("nan"), "disintegration_time_s": 1.0}
        )
    with pytest.raises(ObservationError, match="no value for disintegration_time_s"):
        optimizer.tell(suggestion.experiment_id, {"tensile_strength_pa": 2e6})
    optimizer.tell(suggestion.experiment_id, {}, failed=True)
    with pytest.raises(ObservationError, match="already told"):
        optimizer.tell(suggestion.experiment_id, {}, failed=True)
    with pytest.raises(ObservationError, match="no fraction for component"):
        optimizer.tell_point("c-0100", {"compaction_pressure_pa": 1e8}, {"mcc": 1.0}, {}, failed=True)


def store_suggestion(
    store: ExperimentStore, suggestion: Suggestion, sequence: int, values: dict[str, float], failed: bool
) -> None:
    store.record_experiment(
        ExperimentRecord(
            suggestion.experiment_id,
            "c",
            sequence,
            "failed" if failed else "completed",
            tuple(ComponentRecord(name, fraction) for name, fraction in suggestion.point.fractions.items()),
            100e-6,
            suggestion.point.process["compaction_pressure_pa"],
            0.5,
            8e-3,
            measurements=tuple(MeasurementRecord(name, value, "1") for name, value in values.items()),
            failure_reason="capped" if failed else "",
        )
    )


def test_restart_from_the_store_gives_the_same_next_suggestion(tmp_path: Path) -> None:
    store = ExperimentStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    store.ensure_campaign("c")
    live = config().optimizer("c")
    for sequence in range(1, 9):
        [suggestion] = live.ask()
        values, failed = run_twin(suggestion, sequence)
        live.tell(suggestion.experiment_id, values, failed=failed)
        store_suggestion(store, suggestion, sequence, values, failed)
    restarted = config().optimizer("c")
    assert rebuild_from_store(restarted, store, "c") == 8
    [expected] = live.ask()
    [again] = restarted.ask()
    assert again.experiment_id == expected.experiment_id
    assert again.point.choices == expected.point.choices
    np.testing.assert_allclose(again.cube, expected.cube, atol=1e-9)

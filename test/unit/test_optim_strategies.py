"""Every optimisation strategy on one formulation space: exact mixtures, bounds, determinism.

The space has two process variables and a four-component blend with bounds and a fixed
lubricant. The synthetic measurements are cheap formulas, so whole campaigns run in
milliseconds; the budgets are small on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from tablet_workcell.errors import ConfigError
from tablet_workcell.optim import gp
from tablet_workcell.optim.doe import DesignStrategy, design_size, factorial_design, simplex_lattice
from tablet_workcell.optim.evolution import (
    DUPLICATE_TOLERANCE,
    FAILURE_VIOLATION,
    EvolutionStrategy,
    evaluations,
    project,
)
from tablet_workcell.optim.gp import GaussianProcessStrategy
from tablet_workcell.optim.optimizer import (
    Optimizer,
    RandomStrategy,
    SpaceFillingStrategy,
    Strategy,
    Suggestion,
)
from tablet_workcell.optim.problem import Constraint, History, Objective, Observation, Problem
from tablet_workcell.optim.space import (
    CategoricalVariable,
    ContinuousVariable,
    MixtureComponent,
    SearchSpace,
)

SPACE = SearchSpace(
    process=(
        ContinuousVariable("pressure_mpa", 50.0, 250.0, "MPa"),
        ContinuousVariable("speed_mm_s", 1.0, 20.0, "mm/s"),
    ),
    mixture=(
        MixtureComponent("api", 0.05, 0.30),
        MixtureComponent("mcc", 0.20, 0.80),
        MixtureComponent("lactose", 0.00, 0.60),
        MixtureComponent("croscarmellose", 0.02, 0.08),
    ),
    fixed={"magnesium_stearate": 0.01},
)
BOUNDS = {c.name: (c.low, c.high) for c in SPACE.mixture}
CAMPAIGN = Problem(
    SPACE,
    (Objective("tensile_strength_mpa", "maximize", "MPa"),),
    (Constraint("disintegration_s", at_most=240.0, unit="s"),),
)
PARETO = Problem(
    SPACE,
    (Objective("tensile_strength_mpa", "maximize", "MPa"), Objective("disintegration_s", "minimize", "s")),
)


def tablet(process: Mapping[str, float], fractions: Mapping[str, float]) -> dict[str, float] | None:
    """Synthetic measurements of a tablet; None when it caps (hard and brittle: a failed experiment)."""
    p = (process["pressure_mpa"] - 50.0) / 200.0
    v = (process["speed_mm_s"] - 1.0) / 19.0
    if p > 0.75 and fractions["lactose"] < 0.15:
        return None
    strength = 3.0 * p * (1.0 - 0.4 * p) * (0.5 + fractions["mcc"]) - 2.0 * fractions["api"] - 0.3 * v
    disintegration = 30.0 + 300.0 * p * (0.3 + fractions["mcc"]) - 1500.0 * fractions["croscarmellose"]
    return {"tensile_strength_mpa": strength, "disintegration_s": max(disintegration, 5.0)}


def run(
    problem: Problem,
    strategy: Strategy,
    seed: int,
    experiments: int,
    batch: int = 2,
    measure: Callable[[Suggestion], dict[str, float] | None] | None = None,
    initial: int = 4,
) -> Optimizer:
    """A campaign: ask in batches, tell the synthetic results, until ``experiments`` are told."""
    optimizer = Optimizer(problem, strategy, seed=seed, initial_design=initial)
    while len(optimizer.history.observations) < experiments:
        for suggestion in optimizer.ask(batch):
            values = (measure or (lambda s: tablet(s.point.process, s.point.fractions)))(suggestion)
            optimizer.tell(suggestion.experiment_id, values or {}, failed=values is None)
    return optimizer


def strategies() -> dict[str, Callable[[], Strategy]]:
    return {
        "random": RandomStrategy,
        "sobol": SpaceFillingStrategy,
        "gp": GaussianProcessStrategy,
        "evolution": EvolutionStrategy,
        "design": lambda: DesignStrategy(levels=2, lattice=4, pseudo_components=True),
    }


def asked(problem: Problem, make: Callable[[], Strategy], seed: int, experiments: int) -> list[Suggestion]:
    """Every suggestion of a campaign, in order."""
    suggestions: list[Suggestion] = []

    def measure(suggestion: Suggestion) -> dict[str, float] | None:
        suggestions.append(suggestion)
        return tablet(suggestion.point.process, suggestion.point.fractions)

    run(problem, make(), seed, experiments, measure=measure)
    return suggestions


def budget(name: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Experiments per campaign: the Gaussian process gets one batch, on a coarser acquisition search."""
    if name != "gp":
        return 16
    monkeypatch.setattr(gp, "CANDIDATES", 256)
    monkeypatch.setattr(gp, "REFINE", 1)
    return 6


# ---------------------------------------------------------------------- every strategy
@pytest.mark.parametrize("name", list(strategies()))
def test_every_suggestion_is_an_exact_blend_inside_every_bound(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    suggestions = asked(CAMPAIGN, strategies()[name], seed=3, experiments=budget(name, monkeypatch))
    assert {s.strategy for s in suggestions} == {"sobol", make_name(name)}
    for suggestion in suggestions:
        fractions = suggestion.point.fractions
        assert math.fsum(fractions.values()) == pytest.approx(1.0, abs=1e-9)
        assert fractions["magnesium_stearate"] == 0.01
        for component, (low, high) in BOUNDS.items():
            assert low - 1e-9 <= fractions[component] <= high + 1e-9, (component, fractions[component])
        for variable in SPACE.process:
            assert variable.low <= suggestion.point.process[variable.name] <= variable.high
        assert np.all((suggestion.cube >= 0.0) & (suggestion.cube <= 1.0))


def make_name(name: str) -> str:
    return strategies()[name]().name


@pytest.mark.parametrize("name", list(strategies()))
def test_the_same_seed_and_history_give_the_same_suggestions(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiments = budget(name, monkeypatch)
    first = asked(CAMPAIGN, strategies()[name], seed=5, experiments=experiments)
    again = asked(CAMPAIGN, strategies()[name], seed=5, experiments=experiments)
    assert [(s.experiment_id, s.strategy) for s in first] == [(s.experiment_id, s.strategy) for s in again]
    np.testing.assert_array_equal(np.array([s.cube for s in first]), np.array([s.cube for s in again]))


@pytest.mark.parametrize("name", ["random", "sobol", "evolution", "design"])
def test_an_optimiser_rebuilt_from_stored_recipes_suggests_what_the_live_one_does(name: str) -> None:
    live = run(CAMPAIGN, strategies()[name](), seed=2, experiments=12)
    rebuilt = Optimizer(CAMPAIGN, strategies()[name](), seed=2, initial_design=4)
    for observation in live.history.observations:
        point = SPACE.point(SPACE.decode(observation.cube)[0])
        rebuilt.tell_point(
            observation.experiment_id, point.process, point.fractions, observation.values, observation.failed
        )
    expected, actual = live.ask(3), rebuilt.ask(3)
    np.testing.assert_allclose([s.cube for s in actual], [s.cube for s in expected], atol=1e-6)


# ---------------------------------------------------------------------- evolution
TARGET = np.array([180.0, 6.0, 0.20, 0.45, 0.27, 0.07])  # pressure, speed, api, mcc, lactose, croscarmellose
SCALE = np.array([200.0, 19.0, 0.1, 0.1, 0.1, 0.1])
DISTANCE = Problem(SPACE, (Objective("distance", "minimize"),))


def best_distance(strategy: Strategy, seed: int) -> float:
    def measure(suggestion: Suggestion) -> dict[str, float]:
        values = SPACE.decode(suggestion.cube)[0]
        return {"distance": float(np.sum(((values - TARGET) / SCALE) ** 2))}

    optimizer = run(DISTANCE, strategy, seed, experiments=40, batch=1, measure=measure, initial=8)
    return min(o.values["distance"] for o in optimizer.history.observations)


def test_differential_evolution_beats_random_search_in_forty_experiments() -> None:
    # 8 Sobol points, then 32 one at a time; over 48 seeds, every group of 8 gave a ratio below 0.8
    seeds = range(8)
    evolution = np.median([best_distance(EvolutionStrategy(), seed) for seed in seeds])
    random = np.median([best_distance(RandomStrategy(), seed) for seed in seeds])
    assert evolution < 0.8 * random, (evolution, random)


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Rows of ``points`` (to minimise) that no other row dominates."""
    keep = [not np.any(np.all(points <= row, axis=1) & np.any(points < row, axis=1)) for row in points]
    return points[np.array(keep)]


def test_nsga2_mode_proposes_diverse_points_along_the_trade_off() -> None:
    optimizer = run(PARETO, EvolutionStrategy(), seed=1, experiments=30, batch=4)
    proposals = EvolutionStrategy().propose(optimizer.history, 8, np.random.default_rng(9))
    cubes = np.array([p.cube for p in proposals])
    gaps = np.max(np.abs(cubes[:, None, :] - cubes[None, :, :]), axis=2) + np.eye(len(cubes))
    assert gaps.min() > DUPLICATE_TOLERANCE  # eight different experiments
    measured = [tablet(*_named(cube)) for cube in cubes]
    outcomes = np.array([[-m["tensile_strength_mpa"], m["disintegration_s"]] for m in measured if m])
    told = np.array(
        [
            [-o.values["tensile_strength_mpa"], o.values["disintegration_s"]]
            for o in optimizer.history.observations
            if not o.failed
        ]
    )
    front = pareto_front(told)
    assert len(front) >= 4
    # the offspring spread over the front's strength range (seeds 0-5: 1.0 to 3.7 times it), not one corner
    assert np.ptp(outcomes[:, 0]) > np.ptp(front[:, 0]) / 2


def _named(cube: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    point = SPACE.point(SPACE.decode(cube)[0])
    return point.process, point.fractions


def test_failures_rank_behind_every_success_and_constraints_become_inequalities() -> None:
    history = run(CAMPAIGN, RandomStrategy(), seed=4, experiments=20).history
    _, _, failed = history.arrays()
    assert failed.any() and (~failed).any()
    told = evaluations(history)
    assert np.all(told.g[failed, -1] == FAILURE_VIOLATION)
    assert np.all(told.g[~failed, -1] == 0.0)
    feasible = history.feasible_mask()
    assert np.all(told.g[feasible, 0] <= 0.0)
    assert np.all(told.g[~failed & ~feasible, 0] > 0.0)
    strength = np.array([o.values.get("tensile_strength_mpa", np.nan) for o in history.observations])
    np.testing.assert_allclose(told.f[~failed, 0], -strength[~failed])
    assert np.all(np.isfinite(told.f))


def test_offspring_outside_the_mixture_bounds_are_projected_onto_them() -> None:
    rng = np.random.default_rng(0)
    anchors = SPACE.sample(5, rng)
    points = rng.random((200, SPACE.dims))
    outside = ~SPACE.feasible(points)
    assert outside.any()
    projected = project(SPACE, points, anchors)
    assert SPACE.feasible(projected).all()
    np.testing.assert_array_equal(projected[~outside], points[~outside])


def test_evolution_before_a_population_exists_and_with_a_choice_of_material() -> None:
    space = SearchSpace(
        process=SPACE.process,
        mixture=SPACE.mixture,
        fixed=SPACE.fixed,
        categorical=(
            CategoricalVariable("disintegrant", ("croscarmellose", "crospovidone"), "croscarmellose"),
        ),
    )
    problem = Problem(space, CAMPAIGN.objectives)
    history = History(problem)
    early = EvolutionStrategy().propose(history, 2, np.random.default_rng(0))
    assert len(early) == 2 and space.feasible(np.array([p.cube for p in early])).all()
    rng = np.random.default_rng(1)
    for index, cube in enumerate(space.sample(12, rng)):
        history.add(
            Observation(
                f"exp-{index}",
                cube,
                {"disintegrant": ("croscarmellose", "crospovidone")[index % 2]},
                {"tensile_strength_mpa": float(cube[0])},
            )
        )
    proposals = EvolutionStrategy().propose(history, 6, np.random.default_rng(2))
    assert len(proposals) == 6
    assert all(p.choices["disintegrant"] in ("croscarmellose", "crospovidone") for p in proposals)
    with pytest.raises(ConfigError, match="pop_size"):
        EvolutionStrategy(pop_size=2)


# ---------------------------------------------------------------------- classical designs
def test_design_size_is_the_factorial_times_the_lattice() -> None:
    open_space = SearchSpace(
        process=SPACE.process, mixture=(MixtureComponent("a"), MixtureComponent("b"), MixtureComponent("c"))
    )
    assert design_size(open_space, levels=3, lattice=2) == 9 * 6  # {3, 2} lattice: 3 vertices, 3 midpoints
    assert len(factorial_design(open_space, levels=3, lattice=2)) == 54
    assert design_size(open_space, levels=1, lattice=3) == 10
    bounded = design_size(SPACE, levels=2, lattice=4, pseudo_components=True)
    assert bounded == len(factorial_design(SPACE, levels=2, lattice=4, pseudo_components=True)) == 4 * 7


def test_lattice_points_are_multiples_of_one_mth_of_the_free_total_inside_the_bounds() -> None:
    space = SearchSpace(
        mixture=(
            MixtureComponent("api", 0.0, 0.5),
            MixtureComponent("mcc", 0.2, 1.0),
            MixtureComponent("lactose"),
        ),
        fixed={"magnesium_stearate": 0.01},
    )
    fractions = simplex_lattice(space, lattice=5)
    steps = fractions / space.free_total * 5
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert np.all(fractions[:, 0] <= 0.5 + 1e-12) and np.all(fractions[:, 1] >= 0.2 - 1e-12)
    assert (
        len(fractions) == 21 - 6 - 6
    )  # {3, 5} has 21 points; api > 0.5 drops 6, mcc < 0.2 (0 or 0.198) 6 more
    design = factorial_design(space, levels=2, lattice=5)
    np.testing.assert_allclose(space.decode(design.cube), fractions, atol=1e-12)
    with pytest.raises(ConfigError, match="pseudo_components"):
        factorial_design(SPACE, levels=2, lattice=4)


def test_the_design_runs_each_point_once_then_says_it_is_exhausted() -> None:
    size = design_size(SPACE, levels=2, lattice=4, pseudo_components=True)
    optimizer = Optimizer(
        CAMPAIGN, DesignStrategy(levels=2, lattice=4, pseudo_components=True, seed=7), initial_design=1
    )
    run_cubes = []
    while len(optimizer.history.observations) < size + 1:
        for suggestion in optimizer.ask(min(5, size + 1 - len(optimizer.history.observations))):
            run_cubes.append(suggestion.cube)
            values = tablet(suggestion.point.process, suggestion.point.fractions)
            optimizer.tell(suggestion.experiment_id, values or {}, failed=values is None)
    design = DesignStrategy(levels=2, lattice=4, pseudo_components=True, seed=7).design(SPACE)
    np.testing.assert_array_equal(np.array(run_cubes[1:]), design.cube)  # after the one Sobol point
    with pytest.raises(ConfigError, match="exhausted"):
        optimizer.ask()

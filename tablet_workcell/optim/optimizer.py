"""Ask/tell over a problem, with pluggable strategies and reproducible restarts.

The optimiser holds no state that the experiment store does not: its history is the
list of told observations, and every random choice of a call is seeded from (seed,
number of observations), so an optimiser rebuilt from the store after a restart makes
exactly the suggestion the live one would have made.

The first ``initial_design`` experiments come from a scrambled Sobol design of the
(mixture-aware) cube; afterwards the chosen strategy proposes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.stats import qmc

from tablet_workcell.errors import ConfigError
from tablet_workcell.optim.problem import History, Observation, ObservationError, Problem
from tablet_workcell.optim.space import FloatArray, Point


@dataclass(frozen=True)
class Proposal:
    """What a strategy proposes: a cube point and why."""

    cube: FloatArray
    choices: Mapping[str, str] = field(default_factory=dict)
    predictions: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # name -> (mean, std)
    probability_feasible: float = math.nan
    acquisition: float = math.nan


class Strategy(Protocol):
    name: str

    def propose(self, history: History, count: int, rng: np.random.Generator) -> list[Proposal]: ...


@dataclass(frozen=True)
class Suggestion:
    experiment_id: str
    point: Point
    cube: FloatArray
    strategy: str
    predictions: Mapping[str, tuple[float, float]]
    probability_feasible: float
    acquisition: float


class SpaceFillingStrategy:
    """Scrambled Sobol points of the cube that decode inside the mixture bounds."""

    name = "sobol"

    def propose(self, history: History, count: int, rng: np.random.Generator) -> list[Proposal]:
        space = history.problem.space
        sampler = qmc.Sobol(space.dims, scramble=True, seed=rng)
        points: list[FloatArray] = []
        while len(points) < count:
            batch = sampler.random(64)
            points.extend(batch[space.feasible(batch)])
        choices = _cycle_choices(history, count)
        return [Proposal(p, c) for p, c in zip(points[:count], choices, strict=True)]


class RandomStrategy:
    """Uniform random search (the baseline every strategy must beat)."""

    name = "random"

    def propose(self, history: History, count: int, rng: np.random.Generator) -> list[Proposal]:
        points = history.problem.space.sample(count, rng)
        return [Proposal(p, c) for p, c in zip(points, _random_choices(history, count, rng), strict=True)]


def _cycle_choices(history: History, count: int) -> list[dict[str, str]]:
    categorical = history.problem.space.categorical
    start = len(history.observations)
    return [{c.name: c.choices[(start + i) % len(c.choices)] for c in categorical} for i in range(count)]


def _random_choices(history: History, count: int, rng: np.random.Generator) -> list[dict[str, str]]:
    categorical = history.problem.space.categorical
    return [{c.name: str(rng.choice(c.choices)) for c in categorical} for _ in range(count)]


class Optimizer:
    """Suggest experiments and learn from their results (ask/tell)."""

    def __init__(
        self,
        problem: Problem,
        strategy: Strategy,
        seed: int = 0,
        initial_design: int = 6,
        id_prefix: str = "exp",
    ) -> None:
        if initial_design < 0:
            raise ConfigError(f"initial_design {initial_design} must be 0 or more experiments.")
        self.problem = problem
        self.strategy = strategy
        self.seed = seed
        self.initial_design = initial_design
        self.id_prefix = id_prefix
        self.history = History(problem)
        self._pending: dict[str, Suggestion] = {}
        self._issued = 0

    def _next_id(self) -> str:
        return f"{self.id_prefix}-{len(self.history.observations) + len(self._pending) + 1:04d}"

    def _rng(self, salt: int) -> np.random.Generator:
        # Seeded by what is known (told and still pending), never by wall time: a rebuilt
        # optimiser with the same history asks the same; a second ask before telling differs.
        return np.random.default_rng([self.seed, len(self.history.observations), len(self._pending), salt])

    def ask(self, count: int = 1) -> list[Suggestion]:
        if count < 1:
            raise ConfigError(f"count {count} must be at least 1.")
        initial_left = self.initial_design - len(self.history.observations) - len(self._pending)
        proposals: list[Proposal] = []
        if initial_left > 0:
            proposals = SpaceFillingStrategy().propose(self.history, min(count, initial_left), self._rng(1))
            strategy_name = SpaceFillingStrategy.name
        remaining = count - len(proposals)
        if remaining > 0:
            proposals += self.strategy.propose(self.history, remaining, self._rng(2))
        suggestions = []
        for index, proposal in enumerate(proposals):
            strategy_name = SpaceFillingStrategy.name if index < count - remaining else self.strategy.name
            values = self.problem.space.decode(proposal.cube)[0]
            suggestion = Suggestion(
                experiment_id=self._next_id(),
                point=self.problem.space.point(values, proposal.choices),
                cube=np.asarray(proposal.cube, dtype=np.float64),
                strategy=strategy_name,
                predictions=dict(proposal.predictions),
                probability_feasible=proposal.probability_feasible,
                acquisition=proposal.acquisition,
            )
            self._pending[suggestion.experiment_id] = suggestion
            suggestions.append(suggestion)
        return suggestions

    def tell(self, experiment_id: str, values: Mapping[str, float], failed: bool = False) -> None:
        """Tell the result of a suggestion made by :meth:`ask` (by its experiment id)."""
        suggestion = self._pending.get(experiment_id)
        if suggestion is None:
            told = any(o.experiment_id == experiment_id for o in self.history.observations)
            raise ObservationError(
                f"experiment {experiment_id} was {'already told' if told else 'never suggested'}; "
                f"pending suggestions: {', '.join(self._pending) or 'none'}."
            )
        # Canonical coordinates: what a rebuild from the stored recipe would give, bit for bit.
        cube = self.problem.space.encode(self.problem.space.decode(suggestion.cube))[0]
        self.history.add(Observation(experiment_id, cube, suggestion.point.choices, dict(values), failed))
        del self._pending[experiment_id]

    def tell_point(
        self,
        experiment_id: str,
        process: Mapping[str, float],
        fractions: Mapping[str, float],
        values: Mapping[str, float],
        failed: bool = False,
        choices: Mapping[str, str] | None = None,
    ) -> None:
        """Tell a result by its recipe (rebuilding from the store, or experiments made by hand)."""
        space = self.problem.space
        row = [process[v.name] for v in space.process]
        slot_material = {c.slot: (choices or {}).get(c.name, c.choices[0]) for c in space.categorical}
        try:
            row += [fractions[slot_material.get(c.name, c.name)] for c in space.mixture]
        except KeyError as missing:
            raise ObservationError(
                f"experiment {experiment_id}: no fraction for component {missing}."
            ) from None
        cube = space.encode(np.array(row))[0]
        self.history.add(Observation(experiment_id, cube, dict(choices or {}), dict(values), failed))

    def best(self) -> Observation | None:
        """Best feasible observation of the first objective (None before any)."""
        feasible = [
            o for o, ok in zip(self.history.observations, self.history.feasible_mask(), strict=True) if ok
        ]
        if not feasible:
            return None
        objective = self.problem.objectives[0]
        return min(feasible, key=lambda o: objective.sign() * o.values[objective.name])


def tell_all(
    optimizer: Optimizer,
    rows: Sequence[tuple[str, Mapping[str, float], Mapping[str, float], Mapping[str, float], bool]],
) -> None:
    """Rebuild an optimiser's history from stored rows (id, process, fractions, values, failed)."""
    for experiment_id, process, fractions, values, failed in rows:
        optimizer.tell_point(experiment_id, process, fractions, values, failed)

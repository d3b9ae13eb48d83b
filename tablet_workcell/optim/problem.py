"""What a campaign optimises: objectives, outcome constraints, and the observations so far.

Observations are kept in the cube coordinates the strategies search, with the measured
values by name. Failed experiments (a tablet that capped, a broken dose) are kept too:
strategies learn that their region fails instead of proposing it again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tablet_workcell.errors import ConfigError, WorkcellError
from tablet_workcell.optim.space import FloatArray, SearchSpace

Goal = Literal["maximize", "minimize"]


class ObservationError(WorkcellError):
    """A told result is malformed (NaN, wrong dimension, unknown experiment)."""


@dataclass(frozen=True)
class Objective:
    name: str
    goal: Goal
    unit: str = ""

    def __post_init__(self) -> None:
        if self.goal not in ("maximize", "minimize"):
            raise ConfigError(
                f"objective '{self.name}': goal {self.goal!r} must be 'maximize' or 'minimize'."
            )

    def sign(self) -> float:
        """Multiply by this to turn the objective into one to minimise."""
        return -1.0 if self.goal == "maximize" else 1.0


@dataclass(frozen=True)
class Constraint:
    """An outcome constraint: ``name >= bound`` (at_least) or ``name <= bound`` (at_most)."""

    name: str
    at_least: float | None = None
    at_most: float | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        if (self.at_least is None) == (self.at_most is None):
            raise ConfigError(f"constraint '{self.name}': give exactly one of at_least / at_most.")

    @property
    def bound(self) -> float:
        return float(self.at_least if self.at_least is not None else self.at_most)  # type: ignore[arg-type]

    def satisfied(self, value: float) -> bool:
        if self.at_least is not None:
            return value >= self.at_least
        return value <= float(self.at_most)  # type: ignore[arg-type]

    def slack(self, value: float) -> float:
        """Positive when satisfied: distance to the bound in the constraint's direction."""
        return value - self.bound if self.at_least is not None else self.bound - value


@dataclass(frozen=True)
class Problem:
    space: SearchSpace
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ConfigError("no objective: give at least one measurement to maximise or minimise.")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ConfigError(f"objectives {names} name one measurement twice.")

    @property
    def measurement_names(self) -> list[str]:
        return [o.name for o in self.objectives] + [
            c.name for c in self.constraints if c.name not in {o.name for o in self.objectives}
        ]


@dataclass(frozen=True)
class Observation:
    experiment_id: str
    cube: FloatArray  # coordinates in the strategy's unit cube
    choices: Mapping[str, str]
    values: Mapping[str, float]  # measured values by name (empty when failed)
    failed: bool = False


@dataclass
class History:
    """Observations told so far, in the order they were told."""

    problem: Problem
    observations: list[Observation] = field(default_factory=list)

    def add(self, observation: Observation) -> None:
        dims = self.problem.space.dims
        if observation.cube.shape != (dims,):
            raise ObservationError(
                f"experiment {observation.experiment_id}: {observation.cube.shape[0]} coordinates told, the "
                f"search space has {dims}."
            )
        if any(o.experiment_id == observation.experiment_id for o in self.observations):
            raise ObservationError(f"experiment {observation.experiment_id} was already told.")
        if not observation.failed:
            missing = [n for n in self.problem.measurement_names if n not in observation.values]
            if missing:
                raise ObservationError(
                    f"experiment {observation.experiment_id}: no value for {', '.join(missing)}; tell every "
                    "objective and constraint, or tell the experiment as failed."
                )
            bad = {n: v for n, v in observation.values.items() if not math.isfinite(v)}
            if bad:
                raise ObservationError(
                    f"experiment {observation.experiment_id}: {bad} are not finite; a failed measurement is "
                    "told as a failed experiment with a reason, not as NaN."
                )
        self.observations.append(observation)

    def arrays(self) -> tuple[FloatArray, FloatArray, np.ndarray]:
        """(cube points, values per measurement name in problem order, failed flags)."""
        names = self.problem.measurement_names
        if not self.observations:
            return np.empty((0, self.problem.space.dims)), np.empty((0, len(names))), np.empty(0, dtype=bool)
        x = np.array([o.cube for o in self.observations])
        y = np.array([[o.values.get(n, np.nan) for n in names] for o in self.observations], dtype=np.float64)
        failed = np.array([o.failed for o in self.observations])
        return x, y, failed

    def feasible_mask(self) -> np.ndarray:
        """Experiments that succeeded and met every constraint."""
        return np.array(
            [
                not o.failed and all(c.satisfied(o.values[c.name]) for c in self.problem.constraints)
                for o in self.observations
            ],
            dtype=bool,
        )


def scalarize(
    values: Sequence[float] | FloatArray,
    objectives: Sequence[Objective],
    weights: Sequence[float] | FloatArray,
) -> float:
    """Augmented Chebyshev scalarisation of normalised, minimisation-signed objectives (ParEGO)."""
    signed = np.array([o.sign() * v for o, v in zip(objectives, values, strict=True)])
    w = np.asarray(weights)
    return float(np.max(w * signed) + 0.05 * np.sum(w * signed))

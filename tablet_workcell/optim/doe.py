"""Classical designs, the baseline adaptive strategies are compared with.

A full factorial over the process variables (``levels`` evenly spaced levels each, the
ends included) is crossed with a simplex-lattice {q, m} design over the q mixture
components (Scheffé 1958: every fraction a multiple of 1/m of the free total, i.e. of
what the fixed components leave) and with every combination of the categorical choices.
Lattice points outside the component bounds are dropped; with ``pseudo_components`` the
lattice is laid over the bounded region instead (fraction = low + multiple of 1/m of what
the lower bounds leave), so every lower bound holds and only upper bounds filter.

Design points are handed to strategies as cube points (``SearchSpace.encode``), so they
decode to the exact lattice fractions. ``DesignStrategy`` runs them in an order shuffled
once by its own seed (so no corner of the design is systematically run first) and skips
points already told, which makes the walk survive restarts and interleaving with the
initial space-filling design.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from tablet_workcell.errors import ConfigError
from tablet_workcell.optim.optimizer import Proposal
from tablet_workcell.optim.problem import History
from tablet_workcell.optim.space import SUM_TOLERANCE, FloatArray, SearchSpace

MATCH_TOLERANCE = 1e-6  # cube distance (max norm) under which a told experiment is a design point


@dataclass(frozen=True)
class Design:
    """Design points as cube coordinates (n, dims) with their categorical choices."""

    cube: FloatArray
    choices: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cube)


def simplex_lattice(space: SearchSpace, lattice: int, pseudo_components: bool = False) -> FloatArray:
    """Mixture fractions (n, q) of the {q, m} simplex lattice, m = ``lattice``, inside the bounds."""
    if lattice < 1:
        raise ConfigError(f"lattice degree {lattice} must be at least 1 (fractions in steps of 1/m).")
    q = len(space.mixture)
    if q == 0:
        return np.zeros((1, 0))
    lows = np.array([c.low for c in space.mixture])
    highs = np.array([c.high for c in space.mixture])
    base, budget = (
        (lows, space.free_total - lows.sum()) if pseudo_components else (np.zeros(q), space.free_total)
    )
    steps = np.array(list(_compositions(lattice, q)), dtype=np.float64)
    fractions = base + budget * steps / lattice
    inside = np.all((fractions >= lows - SUM_TOLERANCE) & (fractions <= highs + SUM_TOLERANCE), axis=1)
    return np.asarray(fractions[inside], dtype=np.float64)


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """Every way to write ``total`` as an ordered sum of ``parts`` non-negative integers."""
    result = []
    for bars in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *bars, total + parts - 1)
        result.append(tuple(edges[i + 1] - edges[i] - 1 for i in range(parts)))
    return result


def factorial_design(
    space: SearchSpace, levels: int, lattice: int, pseudo_components: bool = False
) -> Design:
    """Process factorial x mixture lattice x categorical combinations, as cube points."""
    _check_levels(levels)
    grid = [0.5] if levels == 1 else list(np.linspace(0.0, 1.0, levels))
    process = np.array(list(itertools.product(grid, repeat=len(space.process))), dtype=np.float64)
    mixture = simplex_lattice(space, lattice, pseudo_components)
    if not len(mixture):
        raise ConfigError(
            f"no point of the {{{len(space.mixture)}, {lattice}}} simplex lattice fits the component bounds; "
            "raise the lattice degree or lay the lattice over the bounds (pseudo_components=True)."
        )
    lows = np.array([v.low for v in space.process])
    highs = np.array([v.high for v in space.process])
    rows = [np.concatenate([lows + p * (highs - lows), m]) for p, m in itertools.product(process, mixture)]
    cube = np.clip(space.encode(np.array(rows)), 0.0, 1.0)
    combos = list(itertools.product(*(c.choices for c in space.categorical)))
    names = [c.name for c in space.categorical]
    points = np.repeat(cube, len(combos), axis=0)
    choices = [dict(zip(names, combo, strict=True)) for _ in cube for combo in combos]
    keep = space.feasible(points)
    return Design(
        np.asarray(points[keep], dtype=np.float64), [c for c, k in zip(choices, keep, strict=True) if k]
    )


def _check_levels(levels: int) -> None:
    if levels < 1:
        raise ConfigError(
            f"levels {levels} must be at least 1 (1 runs every process variable at its centre)."
        )


def design_size(space: SearchSpace, levels: int, lattice: int, pseudo_components: bool = False) -> int:
    """Number of runs of :func:`factorial_design` (after the bounds filter; 0 when no lattice point fits)."""
    _check_levels(levels)
    process_runs = levels ** len(space.process)
    choice_runs = math.prod(len(c.choices) for c in space.categorical)
    return process_runs * len(simplex_lattice(space, lattice, pseudo_components)) * choice_runs


class DesignStrategy:
    """Runs a factorial x simplex-lattice design, in a seeded shuffled order, once through."""

    name = "design"

    def __init__(
        self, levels: int = 3, lattice: int = 4, seed: int = 0, pseudo_components: bool = False
    ) -> None:
        self.levels = levels
        self.lattice = lattice
        self.seed = seed
        self.pseudo_components = pseudo_components
        self._cache: tuple[SearchSpace, Design] | None = None

    def design(self, space: SearchSpace) -> Design:
        """The design in run order (the same for the same space and seed)."""
        if self._cache is None or self._cache[0] is not space:
            design = factorial_design(space, self.levels, self.lattice, self.pseudo_components)
            order = np.random.default_rng(self.seed).permutation(len(design))
            self._cache = (space, Design(design.cube[order], [design.choices[i] for i in order]))
        return self._cache[1]

    def propose(self, history: History, count: int, rng: np.random.Generator) -> list[Proposal]:
        """The next ``count`` design points not yet told (``rng`` is not used: the order is fixed)."""
        design = self.design(history.problem.space)
        remaining = np.ones(len(design), dtype=bool)
        for observation in history.observations:
            near = np.max(np.abs(design.cube - observation.cube), axis=1) <= MATCH_TOLERANCE
            for i in np.flatnonzero(near & remaining):
                remaining[i] = design.choices[i] != dict(observation.choices)
        left = np.flatnonzero(remaining)
        if len(left) < count:
            raise ConfigError(
                f"the design is exhausted: {len(design)} runs ({self.levels} levels per process variable x "
                f"{{q, {self.lattice}}} simplex lattice), {len(left)} left, {count} asked for; ask for at "
                "most the runs left, or start a larger design (more levels, higher lattice degree)."
            )
        return [Proposal(design.cube[i], design.choices[i]) for i in left[:count]]

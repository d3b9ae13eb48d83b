"""The search space of a formulation campaign, with the mixture constraint handled exactly.

A point has process variables (continuous, with bounds and units), a mixture (component
mass fractions that sum exactly to one minus the fixed components, each within its
bounds) and optional categorical choices (e.g. which disintegrant).

Strategies work in a unit cube ``[0, 1]^d`` and never see the mixture constraint: the
mixture part of the cube is mapped onto the bounded simplex by stick-breaking with
Beta(1, k-1-i) quantiles (component i takes the share 1 - (1 - u_i)^(1/(k-1-i)) of what
is left), a bijection that carries the uniform distribution on the cube to the uniform
distribution on the simplex (Devroye 1986, ch. V), so every decoded point sums to one to
rounding, lower bounds hold by construction, and a surrogate model sees each mixture
exactly once. Upper bounds are enforced
by decoding only what satisfies them: ``feasible`` tells a strategy whether a cube point
decodes inside all bounds, and ``sample`` draws by rejection. No penalty is ever used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.errors import ConfigError

FloatArray = NDArray[np.float64]
SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ContinuousVariable:
    name: str
    low: float
    high: float
    unit: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(
                f"variable '{self.name}': bounds [{self.low}, {self.high}] are not an interval; "
                "give finite low < high."
            )


@dataclass(frozen=True)
class MixtureComponent:
    name: str
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class CategoricalVariable:
    """A choice between materials filling one mixture slot (e.g. the disintegrant)."""

    name: str
    choices: tuple[str, ...]
    slot: str  # the mixture component whose fraction the chosen material takes


@dataclass(frozen=True)
class Point:
    """A decoded candidate: process values, component fractions (by material), choices."""

    process: dict[str, float]
    fractions: dict[str, float]
    choices: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpace:
    process: tuple[ContinuousVariable, ...] = ()
    mixture: tuple[MixtureComponent, ...] = ()
    fixed: Mapping[str, float] = field(default_factory=dict)
    categorical: tuple[CategoricalVariable, ...] = ()

    def __post_init__(self) -> None:
        _check_space(self)

    # ------------------------------------------------------------------ dimensions
    @property
    def free_total(self) -> float:
        """What the mixture components share: one minus the fixed components."""
        return 1.0 - sum(self.fixed.values())

    @property
    def mixture_dims(self) -> int:
        return max(0, len(self.mixture) - 1)

    @property
    def dims(self) -> int:
        """Continuous dimensions of the unit cube strategies search (categoricals excluded)."""
        return len(self.process) + self.mixture_dims

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.process] + [c.name for c in self.mixture]

    # ------------------------------------------------------------------ mapping
    def decode_mixture(self, cube: FloatArray) -> FloatArray:
        """Cube coordinates (n, k-1) -> fractions (n, k) summing to ``free_total``."""
        cube = np.atleast_2d(cube)
        k = len(self.mixture)
        if k == 0:
            return np.zeros((cube.shape[0], 0))
        lows = np.array([c.low for c in self.mixture])
        budget = self.free_total - lows.sum()
        shares = np.empty((cube.shape[0], k))
        remaining = np.ones(cube.shape[0])
        for i in range(k - 1):
            stick = 1.0 - (1.0 - np.clip(cube[:, i], 0.0, 1.0)) ** (1.0 / (k - 1 - i))
            shares[:, i] = stick * remaining
            remaining = remaining - shares[:, i]
        shares[:, k - 1] = remaining
        return np.asarray(lows + budget * shares, dtype=np.float64)

    def encode_mixture(self, fractions: FloatArray) -> FloatArray:
        """Fractions (n, k) -> the cube coordinates that decode to them."""
        fractions = np.atleast_2d(fractions)
        k = len(self.mixture)
        lows = np.array([c.low for c in self.mixture])
        budget = self.free_total - lows.sum()
        shares = (fractions - lows) / budget if budget > 0 else np.zeros_like(fractions)
        cube = np.empty((fractions.shape[0], max(0, k - 1)))
        remaining = np.ones(fractions.shape[0])
        for i in range(k - 1):
            stick = np.divide(shares[:, i], remaining, out=np.zeros_like(remaining), where=remaining > 1e-15)
            cube[:, i] = 1.0 - (1.0 - np.clip(stick, 0.0, 1.0)) ** (k - 1 - i)
            remaining = remaining - shares[:, i]
        return np.asarray(np.clip(cube, 0.0, 1.0), dtype=np.float64)

    def decode(self, cube: FloatArray) -> FloatArray:
        """Cube (n, dims) -> variables (n, len(process) + len(mixture)) in physical units."""
        cube = np.atleast_2d(np.asarray(cube, dtype=np.float64))
        if cube.shape[1] != self.dims:
            raise ValueError(f"points have {cube.shape[1]} coordinates; this space has {self.dims}.")
        p = len(self.process)
        lows = np.array([v.low for v in self.process])
        highs = np.array([v.high for v in self.process])
        process = lows + np.clip(cube[:, :p], 0.0, 1.0) * (highs - lows)
        return np.concatenate([process, self.decode_mixture(cube[:, p:])], axis=1)

    def encode(self, values: FloatArray) -> FloatArray:
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        p = len(self.process)
        lows = np.array([v.low for v in self.process])
        highs = np.array([v.high for v in self.process])
        process = (values[:, :p] - lows) / (highs - lows)
        return np.concatenate([process, self.encode_mixture(values[:, p:])], axis=1)

    def feasible(self, cube: FloatArray) -> NDArray[np.bool_]:
        """Which cube points decode inside every mixture upper bound."""
        values = self.decode(cube)
        fractions = values[:, len(self.process) :]
        highs = np.array([c.high for c in self.mixture])
        return np.asarray(np.all(fractions <= highs + SUM_TOLERANCE, axis=1))

    def sample(self, n: int, rng: np.random.Generator, max_tries: int = 1000) -> FloatArray:
        """``n`` uniform cube points that decode inside all bounds (rejection sampling)."""
        accepted: list[FloatArray] = []
        count = 0
        for _ in range(max_tries):
            batch = rng.random((max(4 * n, 64), self.dims))
            ok = batch[self.feasible(batch)]
            accepted.append(ok)
            count += len(ok)
            if count >= n:
                return np.concatenate(accepted)[:n]
        raise ConfigError(
            "the mixture bounds leave almost no room: fewer than 1 in "
            f"{max_tries * max(4 * n, 64)} random mixtures fits them; widen the component bounds."
        )

    def point(self, values: Sequence[float], choices: Mapping[str, str] | None = None) -> Point:
        """A decoded row as a named point; categorical slots get their chosen material."""
        p = len(self.process)
        choices = dict(choices or {})
        slot_material = {c.slot: choices.get(c.name, c.choices[0]) for c in self.categorical}
        fractions = {
            slot_material.get(c.name, c.name): float(values[p + i]) for i, c in enumerate(self.mixture)
        }
        fractions.update(self.fixed)
        process = {v.name: float(values[i]) for i, v in enumerate(self.process)}
        return Point(process, fractions, choices)


def _check_space(space: SearchSpace) -> None:
    names = [v.name for v in space.process] + [c.name for c in space.mixture] + list(space.fixed)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"search space names {', '.join(duplicates)} more than once; give each variable once."
        )
    if not space.process and not space.mixture:
        raise ConfigError("the search space is empty; give process variables and/or mixture components.")
    for name, fraction in space.fixed.items():
        if not 0.0 < fraction < 1.0:
            raise ConfigError(
                f"fixed component '{name}' = {fraction}; a fixed fraction lies strictly in 0..1."
            )
    for component in space.mixture:
        if not 0.0 <= component.low < component.high <= 1.0:
            raise ConfigError(
                f"mixture component '{component.name}': bounds [{component.low}, {component.high}] "
                "must satisfy "
                "0 <= low < high <= 1."
            )
    if space.mixture:
        total = space.free_total
        lows = sum(c.low for c in space.mixture)
        highs = sum(c.high for c in space.mixture)
        if total <= 0:
            raise ConfigError(
                f"fixed components already take {1 - total:.3f} of the blend; nothing is left to mix."
            )
        if lows > total + SUM_TOLERANCE or highs < total - SUM_TOLERANCE:
            raise ConfigError(
                f"mixture bounds cannot sum to {total:.3f}: lower bounds add to {lows:.3f}, upper bounds to "
                f"{highs:.3f}; loosen them so the lows sum below and the highs above {total:.3f}."
            )
    slots = {c.name for c in space.mixture}
    for categorical in space.categorical:
        if categorical.slot not in slots:
            raise ConfigError(
                f"choice '{categorical.name}' fills slot '{categorical.slot}', "
                "which is not a mixture component."
            )
        if len(categorical.choices) < 2:
            raise ConfigError(f"choice '{categorical.name}' needs at least two options.")

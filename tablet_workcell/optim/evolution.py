"""Evolutionary global search: differential evolution (one objective), NSGA-II (several).

Both algorithms are pymoo's (Storn & Price 1997; Deb et al. 2002), driven through its
ask/tell interface. The optimiser keeps no state besides the told history, so every call
rebuilds the generation from the history instead of carrying a pymoo object along:

1. Every told experiment becomes an evaluated pymoo individual: objectives signed for
   minimisation; each outcome constraint an inequality ``G <= 0`` (the shortfall from its
   bound, divided by the spread of that measurement so constraints in different units
   weigh alike); one more inequality marks failed experiments with a violation of
   ``FAILURE_VIOLATION``, so a failure ranks behind every successful experiment, feasible
   or not (Deb's feasibility rules, as pymoo's survival applies them).
2. The algorithm's own survival picks the parents from the whole history: for DE the best
   ``pop_size`` by violation, then objective (pymoo ``FitnessSurvival``); for NSGA-II by
   non-domination rank and crowding distance (``RankAndCrowding``). Taking the survivors
   of the whole history is exactly NSGA-II's (mu + lambda) elitism. For DE it replaces the
   one-to-one parent/trial replacement, which needs to know each trial's parent, with the
   same elitist truncation: a recorded experiment need not have been proposed by this
   strategy (the initial design, hand-made experiments, another strategy before it).
3. The survivors are handed to a fresh pymoo algorithm as its initial population
   (already evaluated, so nothing is re-run), told back, and the next ``ask`` produces
   offspring with pymoo's operators: DE/best/1/bin for DE (DE/rand/1/bin on request; on
   small budgets the best-based donor converges markedly faster), binary tournament + SBX
   + polynomial mutation for NSGA-II. pymoo draws from a generator seeded from the call's
   ``rng``, so the proposals are a function of (history, rng).

Offspring that leave the mixture upper bounds are repaired by projection: bisection on
the segment from the offspring to the nearest parent inside the bounds, which keeps the
boundary-seeking step a bound-constrained optimum needs. Offspring that repeat an
experiment already told, or one proposed earlier in the batch, are dropped, and what is
still missing after a few generations is filled with uniform samples of the space. The
mixture sum needs no repair at all: the cube decodes to an exact mixture.

Categorical choices are not searched by pymoo: an offspring inherits the choices of the
nearest parent, each changed to another option with probability ``choice_mutation``.
With fewer than ``MIN_POPULATION`` experiments told, proposals are uniform samples.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.soo.nonconvex.de import DE
from pymoo.algorithms.soo.nonconvex.ga import FitnessSurvival
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem as PymooProblem
from pymoo.core.repair import Repair
from pymoo.core.termination import NoTermination
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.problems.static import StaticProblem

from tablet_workcell.errors import ConfigError
from tablet_workcell.optim.optimizer import Proposal
from tablet_workcell.optim.problem import History
from tablet_workcell.optim.space import FloatArray, SearchSpace

logger = logging.getLogger(__name__)

FAILURE_VIOLATION = 1e6  # constraint violation of a failed experiment: behind every success
MIN_POPULATION = 4  # DE/rand/1 needs a target and three other parents
DUPLICATE_TOLERANCE = 1e-6  # cube distance (max norm) under which two points are one experiment
MAX_GENERATIONS = 20  # asks per call before the shortfall is filled with uniform samples
BISECTION_STEPS = 40


@dataclass(frozen=True)
class Evaluations:
    """The told experiments as pymoo sees them (row i is observation i)."""

    x: FloatArray  # (n, dims) cube points
    f: FloatArray  # (n, objectives), signed for minimisation
    g: FloatArray  # (n, constraints + 1), feasible where <= 0; the last column marks failures


def evaluations(history: History) -> Evaluations:
    """Objectives and inequality constraints ``G <= 0`` of every told experiment."""
    problem = history.problem
    x, y, failed = history.arrays()
    names = problem.measurement_names
    ok = ~failed
    signs = np.array([o.sign() for o in problem.objectives])
    f = y[:, : len(problem.objectives)] * signs
    if ok.any():
        worst = f[ok].max(axis=0)
        f = np.where(failed[:, None], worst, f)
    else:
        f = np.zeros_like(f)
    g = np.zeros((len(x), len(problem.constraints) + 1))
    for j, constraint in enumerate(problem.constraints):
        values = y[:, names.index(constraint.name)]
        spread = float(np.ptp(values[ok])) if ok.any() else 0.0
        scale = spread if spread > 0 else max(abs(constraint.bound), 1.0)
        shortfall = -np.array([constraint.slack(v) for v in values]) / scale
        g[:, j] = np.where(failed, 0.0, shortfall)
    g[:, -1] = np.where(failed, FAILURE_VIOLATION, 0.0)
    return Evaluations(np.clip(x, 0.0, 1.0), f, g)


class _MixtureRepair(Repair):
    """Pull offspring outside the mixture upper bounds back towards the nearest parent inside them."""

    def __init__(self, space: SearchSpace, anchors: FloatArray) -> None:
        super().__init__()
        self.space = space
        self.anchors = anchors[space.feasible(anchors)] if len(anchors) else anchors

    def _do(self, problem: object, X: FloatArray, **kwargs: object) -> FloatArray:  # noqa: N803 (pymoo's name)
        return project(self.space, np.asarray(X, dtype=np.float64), self.anchors)


def project(space: SearchSpace, points: FloatArray, anchors: FloatArray) -> FloatArray:
    """Points moved onto the mixture bounds along the segment to their nearest feasible anchor.

    Points already inside the bounds are returned unchanged; without anchors, points
    outside stay outside (the caller resamples them).
    """
    points = np.clip(np.atleast_2d(points), 0.0, 1.0)
    outside = np.flatnonzero(~space.feasible(points))
    if not len(outside) or not len(anchors):
        return points
    repaired = points.copy()
    for index in outside:
        point = points[index]
        anchor = anchors[np.argmin(np.max(np.abs(anchors - point), axis=1))]
        inside, beyond = 0.0, 1.0  # fractions of the way from the anchor to the point
        for _ in range(BISECTION_STEPS):
            middle = 0.5 * (inside + beyond)
            if space.feasible((anchor + middle * (point - anchor))[None, :])[0]:
                inside = middle
            else:
                beyond = middle
        repaired[index] = anchor + inside * (point - anchor)
    return repaired


class EvolutionStrategy:
    """Differential evolution for one objective, NSGA-II for several (pymoo), rebuilt from the history.

    ``pop_size`` parents are taken from the history each call; ``variant`` ('best' or
    'rand'), ``differential_weight`` (F) and ``crossover_rate`` (CR) parameterise
    DE/<variant>/1/bin.
    """

    name = "evolution"

    def __init__(
        self,
        pop_size: int = 10,
        differential_weight: float = 0.5,
        crossover_rate: float = 0.7,
        choice_mutation: float = 0.1,
        variant: str = "best",
    ) -> None:
        if pop_size < MIN_POPULATION:
            raise ConfigError(f"pop_size {pop_size} is too small; evolution needs at least {MIN_POPULATION}.")
        if not 0.0 < differential_weight <= 2.0:
            raise ConfigError(f"differential_weight {differential_weight} must lie in (0, 2]; 0.5 is usual.")
        if not 0.0 <= crossover_rate <= 1.0:
            raise ConfigError(f"crossover_rate {crossover_rate} must lie in [0, 1].")
        if not 0.0 <= choice_mutation <= 1.0:
            raise ConfigError(f"choice_mutation {choice_mutation} is a probability; give 0..1.")
        if variant not in ("rand", "best"):
            raise ConfigError(
                f"DE variant {variant!r}: give 'rand' (DE/rand/1/bin) or 'best' (DE/best/1/bin)."
            )
        self.pop_size = pop_size
        self.variant = variant
        self.differential_weight = differential_weight
        self.crossover_rate = crossover_rate
        self.choice_mutation = choice_mutation

    def propose(self, history: History, count: int, rng: np.random.Generator) -> list[Proposal]:
        space = history.problem.space
        if count < 1:
            return []
        if len(history.observations) < MIN_POPULATION:
            logger.debug(
                "%d experiments told, fewer than %d: proposing uniform samples",
                len(history.observations),
                MIN_POPULATION,
            )
            points = space.sample(count, rng)
            parents: FloatArray = np.empty((0, space.dims))
            parent_choices: list[Mapping[str, str]] = []
        else:
            points, parents, parent_choices = self._offspring(history, count, rng)
        return [
            Proposal(point, self._choices(history, point, parents, parent_choices, rng)) for point in points
        ]

    # ------------------------------------------------------------------ pymoo
    def _offspring(
        self, history: History, count: int, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, list[Mapping[str, str]]]:
        space = history.problem.space
        told = evaluations(history)
        single = told.f.shape[1] == 1
        problem = PymooProblem(
            n_var=space.dims, n_obj=told.f.shape[1], n_ieq_constr=told.g.shape[1], xl=0.0, xu=1.0
        )
        population = Population.new(X=told.x)
        Evaluator().eval(StaticProblem(problem, F=told.f, G=told.g), population)
        population.set("history_index", np.arange(len(told.x)))
        survival = FitnessSurvival() if single else RankAndCrowding()
        survival_seed, algorithm_seed = (int(s) for s in rng.integers(2**32, size=2))
        parents = survival.do(
            problem,
            population,
            n_survive=min(self.pop_size, len(population)),
            random_state=np.random.default_rng(survival_seed),
        )
        parent_x = np.asarray(parents.get("X"), dtype=np.float64)
        repair = _MixtureRepair(space, parent_x)
        if single:
            algorithm = DE(
                pop_size=len(parents),
                sampling=parents,
                variant=f"DE/{self.variant}/1/bin",
                F=self.differential_weight,
                CR=self.crossover_rate,
                repair=repair,
            )
        else:
            algorithm = NSGA2(
                pop_size=len(parents), n_offsprings=max(count, 2), sampling=parents, repair=repair
            )
        algorithm.termination = NoTermination()
        algorithm.setup(problem, seed=algorithm_seed)
        algorithm.tell(infills=algorithm.ask())  # the parents, already evaluated: ranks them only

        accepted: list[FloatArray] = []
        seen = told.x
        for _ in range(MAX_GENERATIONS):
            offspring = np.asarray(algorithm.ask().get("X"), dtype=np.float64)
            offspring = project(space, offspring[rng.permutation(len(offspring))], repair.anchors)
            for point in offspring[space.feasible(offspring)]:
                if (
                    len(accepted) < count
                    and np.min(np.max(np.abs(seen - point), axis=1)) > DUPLICATE_TOLERANCE
                ):
                    accepted.append(point)
                    seen = np.vstack([seen, point])
            if len(accepted) == count:
                break
        if len(accepted) < count:
            logger.debug(
                "evolution produced %d of %d new points; the rest are uniform samples", len(accepted), count
            )
            accepted.extend(space.sample(count - len(accepted), rng))
        indices = parents.get("history_index").astype(int)
        choices = [history.observations[i].choices for i in indices]
        return np.array(accepted), parent_x, choices

    # ------------------------------------------------------------------ categoricals
    def _choices(
        self,
        history: History,
        point: FloatArray,
        parents: FloatArray,
        parent_choices: list[Mapping[str, str]],
        rng: np.random.Generator,
    ) -> dict[str, str]:
        categorical = history.problem.space.categorical
        if not categorical:
            return {}
        if not len(parents):
            return {c.name: str(rng.choice(c.choices)) for c in categorical}
        inherited = parent_choices[int(np.argmin(np.max(np.abs(parents - point), axis=1)))]
        choices = {}
        for variable in categorical:
            choice = inherited.get(variable.name, variable.choices[0])
            if rng.random() < self.choice_mutation:
                choice = str(rng.choice([c for c in variable.choices if c != choice]))
            choices[variable.name] = choice
        return choices

"""Gaussian-process Bayesian optimisation with outcome constraints, failures and batches.

* Surrogates: one scikit-learn GaussianProcessRegressor per objective and per outcome
  constraint (Matern 5/2 with one length scale per input, plus noise), on successful
  experiments only; failures (e.g. capped tablets) train a separate success model
  (GP regression on +-1 labels, squashed to a probability), so failing regions are
  learned, not filtered.
* Acquisition: expected improvement over the best feasible result, times the modelled
  probability that every constraint holds and that the experiment succeeds (Gardner et
  al. 2014; Gelbart et al. 2014). Before anything feasible is known, the probability of
  feasibility alone is maximised.
* Several objectives: ParEGO (Knowles 2006): each proposal scalarises the normalised
  objectives with fresh random weights (augmented Chebyshev), so a run traces the
  Pareto front.
* Batches of q: Kriging believer: after each pick the surrogates pretend the pick
  returned its predicted mean and the next pick is made (Ginsbourger et al. 2010).
* The acquisition is maximised over 2048 random feasible cube points plus L-BFGS-B
  refinement of the best five, inside the unit cube and the mixture bounds.
* Categorical choices (e.g. which disintegrant) enter the surrogates one-hot encoded;
  the acquisition is maximised for every combination of choices and the best is taken.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from tablet_workcell.optim.optimizer import Proposal
from tablet_workcell.optim.problem import History, scalarize
from tablet_workcell.optim.space import FloatArray

CANDIDATES = 2048
REFINE = 5
RESTART_BELOW = 60
HYPERPARAMETER_SUBSET = 100
HYPERPARAMETER_ITERATIONS = 60


def _bounded_lbfgs(objective: Any, initial: FloatArray, bounds: FloatArray) -> tuple[FloatArray, float]:
    """scikit-learn's hyperparameter search with a bounded number of iterations."""
    result = minimize(
        objective,
        initial,
        method="L-BFGS-B",
        jac=True,
        bounds=[tuple(row) for row in bounds],
        options={"maxiter": HYPERPARAMETER_ITERATIONS},
    )
    return np.asarray(result.x), float(result.fun)


def _kernel(dims: int) -> ConstantKernel:
    return ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.full(dims, 0.3), (1e-2, 1e2), nu=2.5) + WhiteKernel(
        1e-4, (1e-8, 1e-1)
    )


@dataclass
class _Model:
    gp: GaussianProcessRegressor
    x: FloatArray
    y: FloatArray

    @classmethod
    def fit(cls, x: FloatArray, y: FloatArray, rng: np.random.Generator) -> _Model:
        # A restart of the hyperparameter search pays off while data are few. With many
        # observations the hyperparameters are learned on a random subset (their
        # likelihood costs O(n^3) per step) and the full model is fitted once with them,
        # which keeps a suggestion at 200 observations within a second.
        seed = int(rng.integers(2**31))
        restarts = 1 if len(x) <= RESTART_BELOW else 0
        many = len(x) > HYPERPARAMETER_SUBSET
        learn = (
            np.sort(rng.choice(len(x), HYPERPARAMETER_SUBSET, replace=False)) if many else np.arange(len(x))
        )
        gp = GaussianProcessRegressor(
            _kernel(x.shape[1]),
            normalize_y=True,
            n_restarts_optimizer=restarts,
            optimizer=_bounded_lbfgs,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(x[learn], y[learn])
            if many:
                gp = GaussianProcessRegressor(gp.kernel_, normalize_y=True, optimizer=None).fit(x, y)
        return cls(gp, x, y)

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        mean, std = self.gp.predict(np.atleast_2d(x), return_std=True)
        return np.asarray(mean), np.maximum(np.asarray(std), 1e-9)

    def believe(self, x: FloatArray) -> _Model:
        """The same kernel refitted with a fantasised observation at ``x`` (its mean)."""
        mean, _ = self.predict(x)
        gp = GaussianProcessRegressor(self.gp.kernel_, normalize_y=True, optimizer=None)
        xs, ys = np.vstack([self.x, x]), np.append(self.y, mean)
        gp.fit(xs, ys)
        return _Model(gp, xs, ys)


def expected_improvement(mean: FloatArray, std: FloatArray, best: float) -> FloatArray:
    """EI for minimisation."""
    z = (best - mean) / std
    return np.asarray((best - mean) * ndtr(z) + std * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi))


def _one_hot(history: History, choices: Sequence[Mapping[str, str]]) -> FloatArray:
    columns = [
        [
            1.0 if chosen.get(c.name, c.choices[0]) == option else 0.0
            for c in history.problem.space.categorical
            for option in c.choices
        ]
        for chosen in choices
    ]
    return np.asarray(columns, dtype=np.float64).reshape(len(choices), -1)


class GaussianProcessStrategy:
    name = "gp_ei"

    def propose(self, history: History, count: int, rng: np.random.Generator) -> list[Proposal]:
        problem = history.problem
        cube, y, failed = history.arrays()
        x = np.hstack([cube, _one_hot(history, [o.choices for o in history.observations])])
        ok = ~failed
        names = problem.measurement_names
        weights = rng.dirichlet(np.ones(len(problem.objectives)))
        target = self._target(history, y[ok], weights)
        objective = _Model.fit(x[ok], target, rng) if ok.sum() >= 2 else None
        constraints = [
            (c, _Model.fit(x[ok], y[ok, names.index(c.name)], rng))
            for c in problem.constraints
            if ok.sum() >= 2
        ]
        success = _Model.fit(x, np.where(failed, -1.0, 1.0), rng) if failed.any() and ok.any() else None
        feasible_targets = target[history.feasible_mask()[ok]] if ok.any() else np.empty(0)
        best = float(feasible_targets.min()) if feasible_targets.size else None
        categorical = problem.space.categorical
        combos = [
            dict(zip([c.name for c in categorical], values, strict=True))
            for values in itertools.product(*[c.choices for c in categorical])
        ]
        proposals = []
        for _ in range(count):
            picks = [
                (*self._maximise(history, objective, constraints, success, best, rng, combo), combo)
                for combo in combos
            ]
            point, score, combo = max(picks, key=lambda pick: pick[1])
            features = np.concatenate([point, _one_hot(history, [combo])[0]])
            proposal = self._proposal(history, features, score, objective, constraints, success)
            proposals.append(
                Proposal(point, combo, proposal.predictions, proposal.probability_feasible, score)
            )
            if objective is not None and len(proposals) < count:  # the last pick needs no fantasy
                objective = objective.believe(features[None, :])
                constraints = [(c, m.believe(features[None, :])) for c, m in constraints]
        return proposals

    @staticmethod
    def _target(history: History, values: FloatArray, weights: FloatArray) -> FloatArray:
        objectives = history.problem.objectives
        if len(objectives) == 1:
            return objectives[0].sign() * values[:, 0]
        k = len(objectives)
        block = values[:, :k]
        low, high = block.min(axis=0), block.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        normalised = (block - low) / span
        return np.array([scalarize(row, objectives, weights) for row in normalised])

    @staticmethod
    def _probability(x: FloatArray, constraints: list, success: _Model | None) -> FloatArray:
        probability = np.ones(len(x))
        for constraint, model in constraints:
            mean, std = model.predict(x)
            slack = (
                (mean - constraint.bound) if constraint.at_least is not None else (constraint.bound - mean)
            )
            probability *= ndtr(slack / std)
        if success is not None:
            mean, std = success.predict(x)
            probability *= ndtr(mean / std)
        return probability

    def _score(
        self,
        x: FloatArray,
        objective: _Model | None,
        constraints: list,
        success: _Model | None,
        best: float | None,
    ) -> FloatArray:
        probability = self._probability(x, constraints, success)
        if objective is None or best is None:
            return probability
        mean, std = objective.predict(x)
        return expected_improvement(mean, std, best) * probability

    def _maximise(
        self,
        history: History,
        objective: _Model | None,
        constraints: list,
        success: _Model | None,
        best: float | None,
        rng: np.random.Generator,
        combo: Mapping[str, str],
    ) -> tuple[FloatArray, float]:
        space = history.problem.space
        one_hot = _one_hot(history, [combo])[0]
        candidates = space.sample(CANDIDATES, rng)

        def with_choices(points: FloatArray) -> FloatArray:
            return np.hstack([points, np.tile(one_hot, (len(points), 1))])

        scores = self._score(with_choices(candidates), objective, constraints, success, best)
        order = np.argsort(scores)[::-1][:REFINE]
        best_x, best_score = candidates[order[0]], float(scores[order[0]])

        def negative(z: FloatArray) -> float:
            return -float(self._score(with_choices(z[None, :]), objective, constraints, success, best)[0])

        for index in order:
            result = minimize(
                negative,
                candidates[index],
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * space.dims,
                options={"maxiter": 50},
            )
            if -result.fun > best_score and space.feasible(result.x[None, :])[0]:
                best_x, best_score = np.clip(result.x, 0.0, 1.0), -float(result.fun)
        return best_x, best_score

    def _proposal(
        self,
        history: History,
        cube: FloatArray,
        score: float,
        objective: _Model | None,
        constraints: list,
        success: _Model | None,
    ) -> Proposal:
        predictions: dict[str, tuple[float, float]] = {}
        if objective is not None and len(history.problem.objectives) == 1:
            mean, std = objective.predict(cube[None, :])
            sign = history.problem.objectives[0].sign()
            predictions[history.problem.objectives[0].name] = (float(sign * mean[0]), float(std[0]))
        for constraint, model in constraints:
            mean, std = model.predict(cube[None, :])
            predictions[constraint.name] = (float(mean[0]), float(std[0]))
        probability = float(self._probability(cube[None, :], constraints, success)[0])
        return Proposal(cube, {}, predictions, probability, score)

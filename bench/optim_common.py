"""Shared parts of the optimiser benchmarks (optimiser_functions.py, optimiser_twin.py).

A *task* is a black box over a :class:`SearchSpace`: a method proposes a point, the task
returns the measured values or a failure. Every method runs the same task with the same
evaluation seeds (experiment ``i`` of seed ``s`` always gets evaluation seed
``s * EVAL_SEED_STRIDE + i``), so methods differ only in what they propose.

The methods:

* ``ours``: ``Optimizer(problem, GaussianProcessStrategy(), seed, initial_design)``.
* ``random``: ``Optimizer(problem, RandomStrategy(), seed, initial_design=1)``: uniform
  samples of the (mixture-aware) space.
* ``evolution``: ``Optimizer(problem, EvolutionStrategy(), seed, initial_design)`` (DE for
  one objective, NSGA-II for two), when ``tablet_workcell.optim.evolution`` imports.
* ``tpe`` / ``nsga2``: Optuna 5 samplers through ask/tell, defaults except the seed
  (NSGA-II: population 10, as its default of 50 would be random search at these budgets).
  Outcome constraints go to ``constraints_func`` as relative violations; a failed
  experiment is told the worst objective value and a violation of 1 per constraint.
* ``skopt``: ``gp_minimize`` (defaults, ``n_initial_points`` = our initial design). It has
  no constraints: an infeasible or failed point is told the worst objective value plus
  ``scale`` times its summed relative violation, so it ranks behind every feasible point
  and the surrogate still sees a slope towards feasibility.
* ``doe``: a fixed list of design points, run in the given (shuffled) order.

Peers search the same cube coordinates our optimiser does (``SearchSpace.decode``: the
mixture by stick-breaking, exactly summing to one), with the first mixture coordinate cut
at the first component's upper bound; :func:`peer_bounds` checks that no other upper bound
binds, so every box point is a valid recipe and peers get no handicap from the mixture.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import multiprocessing
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optuna
from skopt import gp_minimize
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from tablet_workcell.optim.gp import GaussianProcessStrategy
from tablet_workcell.optim.optimizer import Optimizer, RandomStrategy, Strategy
from tablet_workcell.optim.problem import Problem
from tablet_workcell.optim.space import FloatArray, Point

LOG = logging.getLogger("optim_bench")
EVAL_SEED_STRIDE = 100_003
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Outcome:
    values: dict[str, float]
    failed: bool = False


@dataclass(frozen=True)
class Task:
    """A black box with our problem definition; ``worst`` is one value per objective."""

    name: str
    problem: Problem
    evaluate: Callable[[Point, int], Outcome]  # (point, evaluation seed) -> outcome
    worst: tuple[float, ...]
    scale: float = 1.0  # objective units per unit of relative violation (skopt penalty)

    def point(self, cube: FloatArray) -> Point:
        space = self.problem.space
        return space.point(space.decode(np.asarray(cube, dtype=np.float64))[0])

    def violations(self, outcome: Outcome) -> list[float]:
        """Per constraint: relative shortfall (> 0 violated); 1.0 each for a failure."""
        if outcome.failed:
            return [1.0] * len(self.problem.constraints)
        return [-c.slack(outcome.values[c.name]) / max(abs(c.bound), 1e-12) for c in self.problem.constraints]

    def feasible(self, outcome: Outcome) -> bool:
        return not outcome.failed and all(v <= 0.0 for v in self.violations(outcome))

    def objectives(self, outcome: Outcome) -> list[float]:
        """Objective values in their own direction; the worst values for a failure."""
        if outcome.failed:
            return list(self.worst)
        return [outcome.values[o.name] for o in self.problem.objectives]

    def penalised(self, outcome: Outcome) -> float:
        """First objective signed for minimisation, infeasible points behind every feasible one."""
        objective = self.problem.objectives[0]
        if self.feasible(outcome):
            return objective.sign() * self.objectives(outcome)[0]
        violation = sum(max(0.0, v) for v in self.violations(outcome)) + (1.0 if outcome.failed else 0.0)
        return objective.sign() * self.worst[0] + self.scale * violation


@dataclass
class Run:
    task: str
    method: str
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    optimiser_s: float = 0.0  # wall time spent proposing (evaluations excluded)
    error: str = ""


def peer_bounds(task: Task) -> list[tuple[float, float]]:
    """The cube box peers search: every box point decodes inside the mixture bounds."""
    space = task.problem.space
    bounds = [(0.0, 1.0)] * space.dims
    if len(space.mixture) > 1:
        budget = space.free_total - sum(c.low for c in space.mixture)
        first, *rest = space.mixture
        if any(c.high < c.low + budget - 1e-12 for c in rest):
            raise ValueError(f"{task.name}: only the first mixture component may have a binding upper bound.")
        share = min(1.0, (first.high - first.low) / budget)
        bounds[len(space.process)] = (0.0, 1.0 - (1.0 - share) ** (len(space.mixture) - 1))
    return bounds


def optional_strategy(module: str, name: str) -> Callable[[], Strategy] | None:
    """A strategy class from a module that may not exist yet (None when it does not import)."""
    try:
        strategy: Callable[[], Strategy] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        LOG.warning("%s.%s not available (%s): its rows are left out", module, name, error)
        return None
    return strategy


# ---------------------------------------------------------------------------- methods
class _Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.evaluating = 0.0

    def evaluate(self, task: Task, point: Point, seed: int) -> Outcome:
        start = time.perf_counter()
        outcome = task.evaluate(point, seed)
        self.evaluating += time.perf_counter() - start
        return outcome

    def optimiser_s(self) -> float:
        return time.perf_counter() - self.start - self.evaluating


def _ask_tell(task: Task, run: Run, budget: int, strategy: Strategy, initial_design: int) -> None:
    optimizer = Optimizer(task.problem, strategy, seed=run.seed, initial_design=initial_design)
    timer = _Timer()
    for index in range(budget):
        suggestion = optimizer.ask(1)[0]
        outcome = timer.evaluate(task, suggestion.point, run.seed * EVAL_SEED_STRIDE + index)
        optimizer.tell(suggestion.experiment_id, outcome.values, failed=outcome.failed)
        run.outcomes.append(outcome)
    run.optimiser_s = timer.optimiser_s()


def _optuna(task: Task, run: Run, budget: int, sampler_name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    constrained = bool(task.problem.constraints)
    constraints_func = (lambda trial: trial.user_attrs["violation"]) if constrained else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constraints_func / multi-objective TPE are "experimental"
        if sampler_name == "nsga2":
            sampler: optuna.samplers.BaseSampler = optuna.samplers.NSGAIISampler(
                population_size=10, seed=run.seed, constraints_func=constraints_func
            )
        else:
            sampler = optuna.samplers.TPESampler(seed=run.seed, constraints_func=constraints_func)
        study = optuna.create_study(directions=[o.goal for o in task.problem.objectives], sampler=sampler)
        timer = _Timer()
        bounds = peer_bounds(task)
        for index in range(budget):
            trial = study.ask()
            cube = np.array([trial.suggest_float(f"u{j}", lo, hi) for j, (lo, hi) in enumerate(bounds)])
            outcome = timer.evaluate(task, task.point(cube), run.seed * EVAL_SEED_STRIDE + index)
            if constrained:
                trial.set_user_attr("violation", task.violations(outcome))
            study.tell(trial, task.objectives(outcome))
            run.outcomes.append(outcome)
    run.optimiser_s = timer.optimiser_s()


def _skopt(task: Task, run: Run, budget: int, initial_design: int) -> None:
    timer = _Timer()

    def penalised(u: list[float]) -> float:
        outcome = timer.evaluate(
            task, task.point(np.array(u)), run.seed * EVAL_SEED_STRIDE + len(run.outcomes)
        )
        run.outcomes.append(outcome)
        return task.penalised(outcome)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "objective has been evaluated at this point before"
        gp_minimize(
            penalised,
            peer_bounds(task),
            n_calls=budget,
            n_initial_points=initial_design,
            random_state=run.seed,
        )
    run.optimiser_s = timer.optimiser_s()


def _sequence(task: Task, run: Run, budget: int, design: FloatArray) -> None:
    """Design points in order, until ``budget`` are run and something is feasible (or none left)."""
    timer = _Timer()
    for index, cube in enumerate(design):
        if index >= budget and any(task.feasible(o) for o in run.outcomes):
            break
        run.outcomes.append(timer.evaluate(task, task.point(cube), run.seed * EVAL_SEED_STRIDE + index))
    run.optimiser_s = timer.optimiser_s()


def run_method(
    task: Task, method: str, seed: int, budget: int, initial_design: int, design: FloatArray | None = None
) -> Run:
    """One run of one method; an exception is recorded in ``Run.error``, not raised."""
    run = Run(task.name, method, seed)
    try:
        if method == "ours":
            _ask_tell(task, run, budget, GaussianProcessStrategy(), initial_design)
        elif method == "random":
            _ask_tell(task, run, budget, RandomStrategy(), 1)
        elif method == "evolution":
            factory = optional_strategy("tablet_workcell.optim.evolution", "EvolutionStrategy")
            if factory is None:
                raise RuntimeError("tablet_workcell.optim.evolution is not available")
            _ask_tell(task, run, budget, factory(), initial_design)
        elif method in ("tpe", "nsga2"):
            _optuna(task, run, budget, method)
        elif method == "skopt":
            _skopt(task, run, budget, initial_design)
        elif method == "doe" and design is not None:
            _sequence(task, run, budget, design)
        else:
            raise ValueError(f"unknown method {method!r}")
    except Exception as error:  # a benchmark reports a crashing method instead of dying with it
        LOG.exception("%s / %s / seed %d failed", task.name, method, seed)
        run.error = f"{type(error).__name__}: {error}"
    return run


def _limit_threads() -> None:
    threadpool_limits(1)


def run_parallel(function: Callable[..., Run], jobs: Sequence[tuple[Any, ...]], workers: int) -> list[Run]:
    """``function(*job)`` for every job, in ``workers`` forked processes, one BLAS thread each."""
    _limit_threads()
    done: list[Run] = []
    if workers <= 1:
        for job in jobs:
            done.append(function(*job))
            LOG.info("%4d/%d  %s", len(done), len(jobs), _describe(done[-1]))
        return done
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        for future in futures:
            done.append(future.result())
            LOG.info("%4d/%d  %s", len(done), len(jobs), _describe(done[-1]))
    return done


def _describe(run: Run) -> str:
    status = f"ERROR {run.error}" if run.error else f"{len(run.outcomes)} evaluations"
    return f"{run.task:<14} {run.method:<10} seed {run.seed:<3} {status}, optimiser {run.optimiser_s:.1f} s"


# ---------------------------------------------------------------------------- metrics
def best_so_far(task: Task, outcomes: Sequence[Outcome]) -> FloatArray:
    """Best feasible first objective (signed for minimisation) after each evaluation; NaN before."""
    sign = task.problem.objectives[0].sign()
    values = [sign * task.objectives(o)[0] if task.feasible(o) else np.inf for o in outcomes]
    best = np.minimum.accumulate(np.array(values, dtype=np.float64)) if values else np.empty(0)
    return np.where(np.isfinite(best), best, np.nan)


def first_feasible(task: Task, outcomes: Sequence[Outcome]) -> int | None:
    """1-based number of the first feasible experiment (None when there is none)."""
    return next((i + 1 for i, o in enumerate(outcomes) if task.feasible(o)), None)


def hypervolume_2d(points: FloatArray, reference: Sequence[float]) -> float:
    """Area dominated by ``points`` (both objectives minimised) inside the reference box."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[(pts[:, 0] < reference[0]) & (pts[:, 1] < reference[1])]
    area, floor = 0.0, float(reference[1])
    for x, y in pts[np.argsort(pts[:, 0], kind="stable")]:
        if y < floor:
            area += (reference[0] - x) * (floor - y)
            floor = y
    return area


def fit_length(curve: FloatArray, length: int) -> FloatArray:
    """Truncate, or pad with the last value (a design that ran out)."""
    if len(curve) >= length:
        return curve[:length]
    pad = curve[-1] if len(curve) else np.nan
    return np.concatenate([curve, np.full(length - len(curve), pad)])


def quartiles(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    if not len(array):
        return {"median": float("nan"), "q25": float("nan"), "q75": float("nan")}
    q25, median, q75 = np.percentile(array, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}


def curve_quartiles(curves: FloatArray) -> dict[str, list[float]]:
    """Per-column median and interquartile range of (seeds, evaluations) curves."""
    q25, median, q75 = np.percentile(curves, [25, 50, 75], axis=0)
    return {"median": median.tolist(), "q25": q25.tolist(), "q75": q75.tolist()}


# ---------------------------------------------------------------------------- report
@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    curves: dict[str, FloatArray]  # method -> (seeds, evaluations)
    log: bool = False
    mean_only: bool = False  # e.g. the share of runs that have succeeded: no band


def plot_panels(path: Path, panels: Sequence[Panel], suptitle: str) -> None:
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.0 * columns, 4.0 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for method, curves in panel.curves.items():
            x = np.arange(1, curves.shape[1] + 1)
            width = 2.0 if method == "ours" else 1.2
            if panel.mean_only:
                ax.plot(x, curves.mean(axis=0), label=method, linewidth=width)
                continue
            q25, median, q75 = np.percentile(curves, [25, 50, 75], axis=0)
            (line,) = ax.plot(x, median, label=method, linewidth=width)
            ax.fill_between(x, q25, q75, color=line.get_color(), alpha=0.15)
        ax.set_title(panel.title)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(panel.ylabel)
        if panel.log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(suptitle)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine() -> dict[str, object]:
    """Where and on what the benchmark ran, with a digest of the optimiser sources benchmarked."""
    sources = sorted((Path(__file__).resolve().parents[1] / "tablet_workcell" / "optim").glob("*.py"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "optuna": optuna.__version__,
        "threads_per_process": 1,
        "load_average_at_start": os.getloadavg(),
        "optim_sources_sha256_16": digest,
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def cell(stats: dict[str, float], digits: str = ".3g") -> str:
    return f"{stats['median']:{digits}} [{stats['q25']:{digits}}, {stats['q75']:{digits}}]"

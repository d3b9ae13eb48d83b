"""Benchmark of our Bayesian optimiser on standard test functions, against named peers.

    .venv/bin/python bench/optimiser_functions.py [--seeds 20] [--budget 50] [--jobs 1]
        [--problems branin,hartmann6,gardner,branin_currin] [--output FILE.json] [--quick]

Problems (all noise-free, minimised):

* ``branin`` (2-D, x1 in [-5, 10], x2 in [0, 15]; f* = 0.397887);
* ``hartmann6`` (6-D, [0, 1]^6; f* = -3.32237);
* ``gardner``: Gardner et al. 2014's second synthetic problem: min sin(x) + y subject to
  sin(x) sin(y) <= -0.95 on [0, 6]^2 (feasible region about 1.5 % of the box, optimum on
  its boundary: x = 3 pi / 2, y = asin(0.95), f* = asin(0.95) - 1). Before a run has a
  feasible point its regret counts as f_worst - f* = 7 - f*;
* ``branin_currin``: BoTorch's two-objective Branin-Currin on [0, 1]^2, scored by the
  hypervolume gap to 59.36011874867746 (BoTorch's NSGA-II estimate of the best
  hypervolume) with reference point (18, 6).

Metric: simple regret (hypervolume gap) after 30 and 50 evaluations, medians and
interquartile ranges over the seeds. Peers (see optim_common): random search, DE
(``evolution``, if importable), Optuna TPE (``constraints_func`` for ``gardner``;
multi-objective TPE and NSGA-II for ``branin_currin``), scikit-optimize ``gp_minimize``
(penalty for ``gardner``; not run on ``branin_currin``: it has no multi-objective mode).
Targets: our median at or below the best peer's median; one ``ask()`` of our optimiser
after 200 told points in 6-D in at most 1 s (median of 5).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

# mypy checks bench/ as the namespace package 'bench' and cannot resolve the sibling import that
# `python bench/<script>.py` relies on; optim_common.py itself is checked in full.
from optim_common import (  # type: ignore[import-not-found, unused-ignore]
    RESULTS,
    Outcome,
    Panel,
    Run,
    Task,
    best_so_far,
    cell,
    curve_quartiles,
    fit_length,
    hypervolume_2d,
    machine,
    optional_strategy,
    plot_panels,
    quartiles,
    run_method,
    run_parallel,
    table,
)

from tablet_workcell.optim.gp import GaussianProcessStrategy
from tablet_workcell.optim.optimizer import Optimizer
from tablet_workcell.optim.problem import Constraint, Objective, Problem
from tablet_workcell.optim.space import ContinuousVariable, Point, SearchSpace

LOG = logging.getLogger("optimiser_functions")
INITIAL_DESIGN = 6
BRANIN_OPTIMUM = 0.39788735772973816
HARTMANN6_OPTIMUM = -3.3223680114155147
GARDNER_OPTIMUM = math.asin(0.95) - 1.0
GARDNER_WORST = 7.0  # sin(x) + y <= 1 + 6 on the box
BC_REFERENCE = (18.0, 6.0)
BC_MAX_HV = 59.36011874867746
HARTMANN_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ],
    dtype=np.float64,
)
HARTMANN_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
METHODS = {
    "branin": ["ours", "random", "evolution", "tpe", "skopt"],
    "hartmann6": ["ours", "random", "evolution", "tpe", "skopt"],
    "gardner": ["ours", "random", "evolution", "tpe", "skopt"],
    "branin_currin": ["ours", "random", "evolution", "tpe", "nsga2"],
}
ALL_METHODS = ["ours", "random", "evolution", "tpe", "skopt", "nsga2"]
CHECKPOINTS = (30, 50)
LATENCY_OBSERVATIONS = 200
LATENCY_TARGET_S = 1.0


def branin(x1: float, x2: float) -> float:
    return float(
        (x2 - 5.1 * x1**2 / (4 * math.pi**2) + 5 * x1 / math.pi - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


def hartmann6(x: np.ndarray) -> float:
    inner = np.sum(HARTMANN_A * (np.asarray(x)[None, :] - HARTMANN_P) ** 2, axis=1)
    return float(-np.sum(HARTMANN_ALPHA * np.exp(-inner)))


def currin(x0: float, x1: float) -> float:
    factor = 1.0 - math.exp(-1.0 / (2.0 * max(x1, 1e-12)))
    return factor * (2300 * x0**3 + 1900 * x0**2 + 2092 * x0 + 60) / (100 * x0**3 + 500 * x0**2 + 4 * x0 + 20)


def _box(*bounds: tuple[str, float, float]) -> SearchSpace:
    return SearchSpace(process=tuple(ContinuousVariable(name, low, high) for name, low, high in bounds))


def _xs(point: Point) -> list[float]:
    return list(point.process.values())


@functools.cache
def make_task(name: str) -> Task:
    f = Objective("f", "minimize")
    if name == "branin":
        return Task(
            name,
            Problem(_box(("x1", -5.0, 10.0), ("x2", 0.0, 15.0)), (f,)),
            lambda p, _: Outcome({"f": branin(*_xs(p))}),
            worst=(310.0,),
        )
    if name == "hartmann6":
        return Task(
            name,
            Problem(_box(*((f"x{i}", 0.0, 1.0) for i in range(6))), (f,)),
            lambda p, _: Outcome({"f": hartmann6(np.array(_xs(p)))}),
            worst=(0.0,),
        )
    if name == "gardner":
        problem = Problem(_box(("x", 0.0, 6.0), ("y", 0.0, 6.0)), (f,), (Constraint("c", at_most=-0.95),))

        def gardner(point: Point, _: int) -> Outcome:
            x, y = _xs(point)
            return Outcome({"f": math.sin(x) + y, "c": math.sin(x) * math.sin(y)})

        return Task(name, problem, gardner, worst=(GARDNER_WORST,), scale=1.0)
    if name == "branin_currin":
        objectives = (Objective("branin", "minimize"), Objective("currin", "minimize"))

        def both(point: Point, _: int) -> Outcome:
            x0, x1 = _xs(point)
            return Outcome({"branin": branin(15 * x0 - 5, 15 * x1), "currin": currin(x0, x1)})

        return Task(
            name, Problem(_box(("x0", 0.0, 1.0), ("x1", 0.0, 1.0)), objectives), both, worst=(310.0, 14.0)
        )
    raise ValueError(f"unknown problem {name!r}; known: {', '.join(METHODS)}")


def one_run(name: str, method: str, seed: int, budget: int) -> Run:
    return run_method(make_task(name), method, seed, budget, INITIAL_DESIGN)


def score_curve(name: str, run: Run, budget: int) -> np.ndarray:
    """Regret (or hypervolume gap) after each evaluation."""
    task = make_task(name)
    if name == "branin_currin":
        points = np.array([[o.values["branin"], o.values["currin"]] for o in run.outcomes])
        gaps = [BC_MAX_HV - hypervolume_2d(points[: i + 1], BC_REFERENCE) for i in range(len(points))]
        return fit_length(np.maximum(np.array(gaps), 1e-9), budget)
    optimum = {"branin": BRANIN_OPTIMUM, "hartmann6": HARTMANN6_OPTIMUM, "gardner": GARDNER_OPTIMUM}[name]
    best = best_so_far(task, run.outcomes)
    regret = np.where(np.isnan(best), GARDNER_WORST, best) - optimum
    return fit_length(np.maximum(regret, 1e-9), budget)


def latency(seeds: int) -> dict[str, object]:
    """Seconds of one ask() after LATENCY_OBSERVATIONS random points told, Hartmann-6."""
    task = make_task("hartmann6")
    durations = []
    for seed in range(seeds):
        optimizer = Optimizer(task.problem, GaussianProcessStrategy(), seed=seed, initial_design=1)
        rng = np.random.default_rng(seed)
        for index, x in enumerate(rng.random((LATENCY_OBSERVATIONS, 6))):
            process = {f"x{i}": float(v) for i, v in enumerate(x)}
            optimizer.tell_point(f"r{index}", process, {}, {"f": hartmann6(x)})
        start = time.perf_counter()
        optimizer.ask(1)
        durations.append(time.perf_counter() - start)
    median = statistics.median(durations)
    return {
        "observations": LATENCY_OBSERVATIONS,
        "dims": 6,
        "repeats": seeds,
        "seconds": durations,
        "median_s": median,
        "target_s": LATENCY_TARGET_S,
        "met": median <= LATENCY_TARGET_S,
    }


def summarise(
    name: str, runs: list[Run], methods: list[str], budget: int, checkpoints: list[int]
) -> tuple[dict[str, object], list[list[str]], Panel]:
    """Quartiles per method and checkpoint, the target verdicts, table rows and the plot panel."""
    curves = {}
    entry: dict[str, dict[str, Any]] = {}
    for method in methods:
        done = [r for r in runs if r.task == name and r.method == method and not r.error]
        errors = [r.error for r in runs if r.task == name and r.method == method and r.error]
        if not done:
            entry[method] = {"errors": errors}
            continue
        curves[method] = np.array([score_curve(name, r, budget) for r in done])
        entry[method] = {
            "runs": len(done),
            "errors": errors,
            "at": {str(c): quartiles(curves[method][:, c - 1].tolist()) for c in checkpoints},
            "curve": curve_quartiles(curves[method]),
            "optimiser_s_per_run": quartiles([r.optimiser_s for r in done]),
        }
    metric = "hypervolume gap" if name == "branin_currin" else "simple regret"
    targets: dict[str, object] = {}
    rows = []
    for c in checkpoints:
        stats = {m: e["at"][str(c)] for m, e in entry.items() if "at" in e}
        peers = {m: s["median"] for m, s in stats.items() if m != "ours"}
        best_peer = min(peers, key=lambda m: peers[m]) if peers else ""
        met = "ours" in stats and bool(peers) and stats["ours"]["median"] <= peers[best_peer]
        targets[str(c)] = {"best_peer": best_peer, "met": met}
        shown = (cell(stats[m]) if m in stats else "-" for m in ALL_METHODS)
        rows.append([name, metric, str(c), *shown, best_peer, "PASS" if met else "MISS"])
    panel = Panel(f"{name} ({len(next(iter(curves.values()), []))} seeds)", metric, curves, log=True)
    return {"metric": metric, "methods": entry, "targets": targets}, rows, panel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--problems", default=",".join(METHODS))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one BLAS thread each)")
    parser.add_argument("--latency-repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "optimiser_functions.json")
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 seeds, budget 15, latency once")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget, args.latency_repeats = 3, 15, 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    evolution = optional_strategy("tablet_workcell.optim.evolution", "EvolutionStrategy") is not None
    jobs = [
        (p, m, s, args.budget)
        for p in problems
        for m in METHODS[p]
        if evolution or m != "evolution"
        for s in range(args.seeds)
    ]

    host = machine()  # before the runs: the source digest is of the code that runs
    LOG.info("latency: one ask() after %d told points in 6-D ...", LATENCY_OBSERVATIONS)
    ask_latency = latency(args.latency_repeats)
    started = time.perf_counter()
    runs = run_parallel(one_run, jobs, args.jobs)
    wall_s = time.perf_counter() - started

    checkpoints = sorted({c for c in CHECKPOINTS if c <= args.budget} | {args.budget})
    results: dict[str, dict[str, object]] = {}
    panels, rows = [], []
    for name in problems:
        methods = [m for m in METHODS[name] if evolution or m != "evolution"]
        results[name], problem_rows, panel = summarise(name, runs, methods, args.budget, checkpoints)
        rows += problem_rows
        panels.append(panel)

    headers = ["problem", "metric", "evals", *ALL_METHODS, "best peer", "ours <= best peer"]
    print()
    print("median [interquartile range] over", args.seeds, "seeds; '-' = not run")
    print(table(headers, rows))
    verdict = "PASS" if ask_latency["met"] else "MISS"
    print(
        f"\nask() latency after {LATENCY_OBSERVATIONS} observations, 6-D: median "
        f"{ask_latency['median_s']:.2f} s (target <= {LATENCY_TARGET_S:.0f} s): {verdict}"
    )
    if not evolution:
        print("evolution: tablet_workcell.optim.evolution not importable, rows left out")

    report = {
        "machine": host,
        "seeds": args.seeds,
        "budget": args.budget,
        "initial_design": INITIAL_DESIGN,
        "quick": args.quick,
        "wall_s": wall_s,
        "jobs": args.jobs,
        "latency": ask_latency,
        "problems": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    figure = args.output.with_suffix(".png")
    plot_panels(figure, panels, "Optimisers on test functions: median and interquartile band")
    LOG.info("written %s and %s (%.0f s)", args.output, figure, wall_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Suggestion latency at 200 observations in 6-D, against the full-fit baseline, same run.

    .venv/bin/python bench/optimiser_latency.py [--repeats 5]

Target (issue #6): one ``ask()`` after 200 told points on Hartmann-6 in at most 1 s on
one core. Two configurations run back to back on the same points and seeds:

* ``subset`` (what ships): GP hyperparameters learned on a random 100-point subset, the
  full 200-point model fitted once with them (``gp.HYPERPARAMETER_SUBSET``);
* ``full fit`` (baseline): hyperparameters learned on all 200 points, as before.

Writes ``bench/results/optimiser_latency.json``; one BLAS thread (``threadpool_limits``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
from optim_common import RESULTS, machine  # type: ignore[import-not-found, unused-ignore]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from tablet_workcell.optim import gp
from tablet_workcell.optim.gp import GaussianProcessStrategy
from tablet_workcell.optim.optimizer import Optimizer
from tablet_workcell.optim.problem import Objective, Problem
from tablet_workcell.optim.space import ContinuousVariable, SearchSpace

LOG = logging.getLogger("optimiser_latency")
OBSERVATIONS = 200
DIMS = 6
TARGET_S = 1.0
_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)  # fmt: skip
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> float:
    return float(-np.sum(_ALPHA * np.exp(-np.sum(_A * (x - _P) ** 2, axis=1))))


def one_ask(seed: int, subset: int) -> float:
    space = SearchSpace(process=tuple(ContinuousVariable(f"x{i}", 0.0, 1.0) for i in range(DIMS)))
    problem = Problem(space, (Objective("f", "minimize"),))
    optimizer = Optimizer(problem, GaussianProcessStrategy(), seed=seed, initial_design=1)
    rng = np.random.default_rng(seed)
    for index, x in enumerate(rng.random((OBSERVATIONS, DIMS))):
        optimizer.tell_point(
            f"r{index}", {f"x{i}": float(v) for i, v in enumerate(x)}, {}, {"f": hartmann6(x)}
        )
    previous = gp.HYPERPARAMETER_SUBSET
    gp.HYPERPARAMETER_SUBSET = subset
    try:
        start = time.perf_counter()
        optimizer.ask(1)
        return time.perf_counter() - start
    finally:
        gp.HYPERPARAMETER_SUBSET = previous


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "optimiser_latency.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threadpool_limits(1)
    host = machine()
    configurations = {"subset": gp.HYPERPARAMETER_SUBSET, "full fit": OBSERVATIONS + 1}
    seconds: dict[str, list[float]] = {name: [] for name in configurations}
    for seed in range(args.repeats):
        for name, subset in configurations.items():  # interleaved: load changes hit both alike
            seconds[name].append(one_ask(seed, subset))
            LOG.info("seed %d  %-8s %.3f s", seed, name, seconds[name][-1])
    report = {
        "machine": host,
        "observations": OBSERVATIONS,
        "dims": DIMS,
        "target_s": TARGET_S,
        "configurations": {
            name: {
                "seconds": values,
                "median_s": statistics.median(values),
                "met": statistics.median(values) <= TARGET_S,
            }
            for name, values in seconds.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    heading = f"one ask() after {OBSERVATIONS} observations in {DIMS}-D, median of {args.repeats}"
    lines = [f"{heading} (target {TARGET_S} s):"]
    for name, values in seconds.items():
        entry = {"median_s": statistics.median(values), "met": statistics.median(values) <= TARGET_S}
        lines.append(f"  {name:<9} {entry['median_s']:.3f} s  {'PASS' if entry['met'] else 'MISS'}")
    lines.append(f"saved {args.output}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

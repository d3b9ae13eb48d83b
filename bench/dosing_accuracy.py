"""Accuracy of gravimetric dosing over the wire: driver -> pty -> simulator process with the twin.

    .venv/bin/python bench/dosing_accuracy.py [--doses 50] [--time-scale 5] [--seed 0]
        [--output bench/results/dosing_accuracy.json] [--quick]

Why: the dispenser doses each powder of a recipe (10-100 mg each) by weight, and the
tablet's composition is only as good as those doses. Every dose here goes through the
real drivers (MT-SICS balance, dosing-head bus) to the dispensing-station simulator in its
own process (``python -m tablet_workcell.devices.serve``), whose physics is the twin's
feeder (noisy flow, powder in flight) and balance (settling, noise, readability). The
simulator's clock runs ``--time-scale`` times faster than the wall clock (said in the
JSON), so the controllers see the instrument's dynamics compressed in time and the host's
timing jitter magnified by the same factor: a harder test than real time.

Methods, same targets (uniform 10-100 mg, seeded), a fresh simulator per method:

* ``ours``: :class:`~tablet_workcell.devices.dosing.gravimetric.GravimetricDoser` (fast,
  slow, stop by the predicted pending mass with a learned correction, top-ups);
* ``naive_full_rate`` (baseline): feed at full rate, stop when the reading reaches the
  target, report the stable reading;
* ``reference_fixed_windows`` (baseline): the twin's reference policy
  (``twin.dosing.gravimetric_dose``) over the wire: fast, then slow at 15 %, switch and
  stop at fixed windows of the nominal rate x lag, no learning, decisions once per cycle.

Reported per method: mean, mean absolute and worst absolute error in mg, the share
within the tolerance max(0.5 mg, 2 %), and the time per dose.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tablet_workcell.devices.balance.driver import MtSicsBalance
from tablet_workcell.devices.dosing.driver import DosingBus, DosingHead
from tablet_workcell.devices.dosing.gravimetric import DoseOutOfToleranceError, DoseSettings, GravimetricDoser
from tablet_workcell.devices.sim_process import SimulatorProcess

LOG = logging.getLogger("dosing_accuracy")
RESULTS = Path(__file__).resolve().parent / "results"
CYCLE_S = 0.008  # wall seconds between readings, the same for every method
NOMINAL_LAG_S = 0.45  # fall time + balance settling of the simulated station (instrument s)

Controller = Callable[[MtSicsBalance, DosingHead, float], float]  # -> dosed kg


def tolerance_kg(target_kg: float) -> float:
    return max(0.5e-6, 0.02 * target_kg)


def make_ours(time_scale: float) -> Controller:
    doser: GravimetricDoser | None = None

    def dose(balance: MtSicsBalance, head: DosingHead, target_kg: float) -> float:
        nonlocal doser
        doser = doser or GravimetricDoser(balance, DoseSettings(time_scale=time_scale, cycle_s=CYCLE_S))
        try:
            return doser.dose(head, target_kg, "lactose").dosed_kg
        except DoseOutOfToleranceError as error:
            return error.result.dosed_kg

    return dose


def make_naive(time_scale: float) -> Controller:
    def dose(balance: MtSicsBalance, head: DosingHead, target_kg: float) -> float:
        balance.tare()
        head.start_fraction(1.0)
        try:
            while balance.read_immediate().mass_kg < target_kg:
                time.sleep(CYCLE_S)
        finally:
            head.stop()
        time.sleep(1.05 / time_scale)  # the same settling wait as ours
        return balance.stable_mass_kg()

    return dose


def make_reference(time_scale: float) -> Controller:
    def dose(balance: MtSicsBalance, head: DosingHead, target_kg: float) -> float:
        rate = (head.max_rate_mg_per_s or 20.0) * 1e-6
        slow = min(0.15, 0.1 * target_kg / (rate * NOMINAL_LAG_S))
        slow_window, stop_window = 1.5 * rate * NOMINAL_LAG_S, slow * rate * NOMINAL_LAG_S
        balance.tare()
        command = 0.0
        try:
            while True:
                remaining = target_kg - balance.read_immediate().mass_kg
                if remaining <= stop_window:
                    break
                wanted = 1.0 if remaining > slow_window else slow
                if wanted != command:
                    command = wanted
                    head.start_fraction(command)
                time.sleep(CYCLE_S)
        finally:
            head.stop()
        time.sleep(1.05 / time_scale)
        return balance.stable_mass_kg()

    return dose


METHODS: dict[str, Callable[[float], Controller]] = {
    "ours": make_ours,
    "naive_full_rate": make_naive,
    "reference_fixed_windows": make_reference,
}


def run_method(name: str, targets_kg: list[float], seed: int, time_scale: float) -> list[dict[str, float]]:
    options = {"seed": seed, "heads": "lactose:1000000"}
    rows = []
    with (
        SimulatorProcess("dispensing_station", options, time_scale=time_scale) as sim,
        MtSicsBalance(sim.ports["balance"]) as balance,
        DosingBus(sim.ports["feeder"]) as bus,
    ):
        head = bus.head(1)
        head.identify()
        controller = METHODS[name](time_scale)
        for index, target in enumerate(targets_kg):
            started = time.monotonic()
            dosed = controller(balance, head, target)
            wall = time.monotonic() - started
            rows.append({"target_mg": target * 1e6, "dosed_mg": dosed * 1e6, "wall_s": wall})
            LOG.info(
                "%-24s %2d  target %6.2f mg  dosed %6.2f mg  error %+6.3f mg  %.2f s",
                name, index, target * 1e6, dosed * 1e6, (dosed - target) * 1e6, wall,
            )  # fmt: skip
    return rows


def summarise(rows: list[dict[str, float]], time_scale: float) -> dict[str, float]:
    errors = np.array([r["dosed_mg"] - r["target_mg"] for r in rows])
    within = [abs(e) <= tolerance_kg(r["target_mg"] * 1e-6) * 1e6 for e, r in zip(errors, rows, strict=True)]
    return {
        "mean_error_mg": float(errors.mean()),
        "mean_abs_error_mg": float(np.abs(errors).mean()),
        "worst_abs_error_mg": float(np.abs(errors).max()),
        "std_error_mg": float(errors.std(ddof=1)) if len(errors) > 1 else 0.0,
        "within_tolerance_share": float(np.mean(within)),
        "median_dose_instrument_s": statistics.median(r["wall_s"] for r in rows) * time_scale,
    }


def plot(path: Path, runs: dict[str, list[dict[str, float]]], time_scale: float) -> None:
    figure, axis = plt.subplots(figsize=(8, 4.5))
    targets = np.linspace(10, 100, 50)
    tol = np.array([tolerance_kg(t * 1e-6) * 1e6 for t in targets])
    axis.fill_between(targets, -tol, tol, color="0.9", label="tolerance max(0.5 mg, 2 %)")
    for (name, rows), marker in zip(runs.items(), "o^s", strict=False):
        x = [r["target_mg"] for r in rows]
        y = [r["dosed_mg"] - r["target_mg"] for r in rows]
        axis.plot(x, y, marker, ms=4, label=name, alpha=0.8)
    axis.axhline(0.0, color="k", lw=0.6)
    axis.set_yscale("symlog", linthresh=1.0)
    axis.set_xlabel("target (mg)")
    axis.set_ylabel("dosed - target (mg, symlog)")
    axis.set_title(f"Gravimetric dosing over the wire (simulator at {time_scale:g}x real time)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doses", type=int, default=50)
    parser.add_argument("--time-scale", type=float, default=5.0, help="simulator seconds per wall second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--output", type=Path, default=RESULTS / "dosing_accuracy.json")
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 doses per method")
    args = parser.parse_args()
    if args.quick:
        args.doses = 8
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(args.seed)
    targets = [float(t) * 1e-6 for t in rng.uniform(10.0, 100.0, args.doses)]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    host = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }
    started = time.perf_counter()
    runs = {name: run_method(name, targets, args.seed, args.time_scale) for name in methods}
    wall_s = time.perf_counter() - started
    summary = {name: summarise(rows, args.time_scale) for name, rows in runs.items()}

    scale = f"simulator at {args.time_scale:g}x real time"
    print(f"\n{args.doses} doses of 10-100 mg, {scale} ({wall_s:.0f} s wall)")
    print(f"{'method':<26}{'mean':>9}{'mean |e|':>10}{'worst |e|':>11}{'in tol.':>9}{'s/dose':>8}")
    for name, row in summary.items():
        print(
            f"{name:<26}{row['mean_error_mg']:>+8.3f} {row['mean_abs_error_mg']:>9.3f} "
            f"{row['worst_abs_error_mg']:>10.3f} {100 * row['within_tolerance_share']:>7.0f} % "
            f"{row['median_dose_instrument_s']:>6.1f}"
        )
    print("errors in mg; s/dose in instrument (simulated) seconds, median")

    report = {
        "machine": host,
        "quick": args.quick,
        "doses_per_method": args.doses,
        "target_range_mg": [10.0, 100.0],
        "seed": args.seed,
        "time_scale": args.time_scale,
        "time_scale_note": "simulator seconds per wall second; controllers read the balance every "
        f"{CYCLE_S * 1e3:.0f} ms of wall time",
        "tolerance": "max(0.5 mg, 2 % of target)",
        "baselines": [m for m in methods if m != "ours"],
        "wall_s": wall_s,
        "summary": summary,
        "doses": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    figure = args.output.with_suffix(".png")
    plot(figure, runs, args.time_scale)
    LOG.info("written %s and %s", args.output, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

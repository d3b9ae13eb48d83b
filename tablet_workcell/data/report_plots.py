"""The plots of the campaign report (:mod:`tablet_workcell.data.report`), each a PNG file.

Split from the report's HTML assembly so each can be read on its own. matplotlib is used
without pyplot (a Figure on its own Agg canvas: no global state, no display) and imported
only when a plot is drawn, so the rest of the package never needs it. Each ``plot_*`` function
draws one figure, or returns an :class:`Outcome` that says why it was skipped.

The objectives and the measurement-name helpers the plots need (:class:`Objective`,
:func:`resolve_name`, :func:`pareto_front`, :func:`formulation_clusters`) live here too;
:mod:`tablet_workcell.data.report` re-exports them.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tablet_workcell.data.snapshot import CampaignData, ExperimentData, ExportError

if TYPE_CHECKING:
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

Goal = Literal["max", "min"]
ColourBy = Literal["main_component", "cluster"]
UNIT_SUFFIXES = ("pa", "mpa", "s", "n", "m", "kg", "m2")  # "tensile_strength_pa" is "tensile_strength"
ENGINEERING_UNITS = {"Pa", "N", "m", "J", "W", "Hz", "V", "A"}  # tick labels with SI prefixes (MPa, mm)
DPI = 110


# ---------------------------------------------------------------------- objectives
@dataclass(frozen=True)
class Objective:
    name: str  # measurement name
    goal: Goal


def resolve_name(name: str, names: Iterable[str]) -> str | None:
    """The measurement called ``name``, or else the one called ``name`` plus a unit suffix."""
    names = list(names)
    if name in names:
        return name
    matches = [n for n in names if n.startswith(f"{name}_") and n[len(name) + 1 :] in UNIT_SUFFIXES]
    return matches[0] if len(matches) == 1 else None


def pareto_front(points: Sequence[tuple[float, float]], goals: tuple[Goal, Goal]) -> list[int]:
    """Indices of the points no other point beats in both objectives."""
    signs = [1.0 if goal == "max" else -1.0 for goal in goals]
    scored = [(p[0] * signs[0], p[1] * signs[1]) for p in points]
    return [
        i
        for i, (a, b) in enumerate(scored)
        if not any(x >= a and y >= b and (x > a or y > b) for x, y in scored)
    ]


# ---------------------------------------------------------------------- plots
@dataclass(frozen=True)
class Outcome:
    """What a ``plot_*`` function did: drew its figure (``text`` is the caption) or skipped it."""

    text: str  # the caption, or why the plot was skipped
    skipped: bool = False


def _skip(text: str) -> Outcome:
    return Outcome(text, skipped=True)


def require_matplotlib() -> None:
    """Raise :class:`ExportError`, saying what to install, unless matplotlib is importable."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ExportError(
            "the campaign report needs matplotlib, which is not installed; install tablet_workcell[dev] "
            "or matplotlib, or use `workcell data export` for the tables alone."
        )


def _figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot: no global state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - only reports need it
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _label(axis: Axis, name: str, unit: str, goal: Goal | None = None) -> None:
    """Axis label without the name's unit suffix; the unit on the ticks (SI prefixes) or in brackets."""
    from matplotlib.ticker import EngFormatter, FuncFormatter  # noqa: PLC0415

    stem, _, suffix = name.rpartition("_")
    text = (stem if stem and suffix in UNIT_SUFFIXES else name).replace("_", " ")
    text += f" ({goal}imise)" if goal else ""
    if unit in ENGINEERING_UNITS:
        axis.set_major_formatter(EngFormatter(unit=unit))
    elif unit == "kg":  # kilograms take no prefix: label the ticks in grams (mg, µg)
        grams = EngFormatter(unit="g")
        axis.set_major_formatter(FuncFormatter(lambda value, _: grams.format_eng(value * 1e3)))
    else:
        text += f" [{unit}]" if unit and unit != "1" else ""
    axis.set_label_text(text)


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, format="png", bbox_inches="tight")


def plot_objectives(
    data: CampaignData,
    values: dict[str, dict[str, float]],
    units: dict[str, str],
    goals: dict[str, Goal],
    path: Path,
) -> Outcome:
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    if not values:
        return _skip("objectives plot skipped: the campaign has no measurements.")
    columns = 2 if len(values) > 1 else 1
    rows = math.ceil(len(values) / columns)
    figure = _figure(6.0 * columns, 3.2 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (name, by_experiment) in zip(axes, values.items(), strict=False):
        done = [
            (e.sequence, by_experiment[e.id])
            for e in data.experiments
            if e.id in by_experiment and e.status == "completed"
        ]
        failed = [
            (e.sequence, by_experiment[e.id])
            for e in data.experiments
            if e.id in by_experiment and e.status != "completed"
        ]
        if done:
            ax.plot(*zip(*done, strict=True), "o", color="tab:blue", label="completed")
        if failed:
            ax.plot(*zip(*failed, strict=True), "x", color="tab:red", label="not completed")
        goal = goals.get(name)
        if goal and done:
            best = list(zip(*done, strict=True))
            running = [
                max(best[1][: i + 1]) if goal == "max" else min(best[1][: i + 1]) for i in range(len(done))
            ]
            ax.step(best[0], running, where="post", color="tab:orange", label=f"running best ({goal})")
        ax.set_title(f"{name} ({goal}imise)" if goal else name, fontsize=10)
        ax.set_xlabel("experiment number")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _label(ax.yaxis, name, units[name])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(values) :]:
        ax.set_visible(False)
    _save(figure, path)
    return Outcome(
        "Each measurement against the experiment number; where its goal is known (campaign objectives), "
        "the running best of the completed experiments."
    )


def plot_pareto(
    data: CampaignData,
    values: dict[str, dict[str, float]],
    units: dict[str, str],
    objectives: tuple[Objective, Objective],
    path: Path,
) -> Outcome:
    missing = [o.name for o in objectives if resolve_name(o.name, values) is None]
    if missing:
        return _skip(f"Pareto front skipped: no measurement named {' or '.join(missing)}.")
    a, b = (Objective(resolve_name(o.name, values) or o.name, o.goal) for o in objectives)
    done = [
        e
        for e in data.experiments
        if e.status == "completed" and e.id in values[a.name] and e.id in values[b.name]
    ]
    if not done:
        return _skip(f"Pareto front skipped: no completed experiment has both {a.name} and {b.name}.")
    points = [(values[a.name][e.id], values[b.name][e.id]) for e in done]
    front = sorted(pareto_front(points, (a.goal, b.goal)), key=lambda i: points[i])
    figure = _figure(6.4, 4.6)
    ax = figure.subplots()
    ax.plot(*zip(*points, strict=True), "o", color="0.7", label="completed experiments")
    ax.plot(
        [points[i][0] for i in front],
        [points[i][1] for i in front],
        "o-",
        color="tab:red",
        label="Pareto front",
    )
    for i in front:
        ax.annotate(f"#{done[i].sequence}", points[i], textcoords="offset points", xytext=(5, 5), fontsize=8)
    _label(ax.xaxis, a.name, units[a.name], a.goal)
    _label(ax.yaxis, b.name, units[b.name], b.goal)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(figure, path)
    return Outcome(
        f"Pareto front of {a.name} ({a.goal}imise) and {b.name} ({b.goal}imise); "
        "labels are experiment numbers."
    )


def formulation_clusters(experiments: Sequence[ExperimentData], k: int = 4) -> dict[str, str]:
    """Experiment id -> formulation cluster, named by its centre's two main components.

    k-means on the mass-fraction vectors, started from far-apart experiments (deterministic)."""
    materials = list(dict.fromkeys(c.material for e in experiments for c in e.components))
    x = np.array(
        [
            [sum(c.mass_fraction for c in e.components if c.material == m) for m in materials]
            for e in experiments
        ]
    )
    if not len(x):
        return {}
    centres = x[:1]
    while len(centres) < min(k, len(np.unique(x.round(6), axis=0))):
        farthest = np.argmax(((x[:, None, :] - centres[None]) ** 2).sum(-1).min(1))
        centres = np.vstack([centres, x[farthest]])
    for _ in range(100):
        labels = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        moved = np.array(
            [x[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(len(centres))]
        )
        if np.allclose(moved, centres):
            break
        centres = moved
    names = []
    for j, centre in enumerate(centres):
        top = np.argsort(centre)[::-1][:2]
        names.append(
            f"{j + 1}: " + ", ".join(f"{materials[i]} {centre[i]:.2f}" for i in top if centre[i] > 0)
        )
    return {e.id: names[label] for e, label in zip(experiments, labels, strict=True)}


def plot_tabletability(
    data: CampaignData,
    values: dict[str, dict[str, float]],
    units: dict[str, str],
    colour_by: ColourBy,
    path: Path,
) -> Outcome:
    name = resolve_name("tensile_strength", values)
    strength = values[name] if name else {}
    done = [e for e in data.experiments if e.id in strength]
    if not name or not done:
        return _skip("tabletability plot skipped: no experiment has a tensile_strength measurement.")
    clusters = formulation_clusters(done) if colour_by == "cluster" else {}
    groups: dict[str, list[ExperimentData]] = {}
    for e in done:
        groups.setdefault(clusters.get(e.id) or e.main_component, []).append(e)
    figure = _figure(6.4, 4.6)
    ax = figure.subplots()
    for index, (group, members) in enumerate(sorted(groups.items())):
        for completed, marker in ((True, "o"), (False, "x")):
            chosen = [e for e in members if (e.status == "completed") == completed]
            if chosen:
                x = [e.compaction_pressure_pa for e in chosen]
                y = [strength[e.id] for e in chosen]
                label = group if completed else f"{group} (not completed)"
                ax.plot(x, y, marker, color=f"C{index % 10}", label=label, linestyle="none")
    _label(ax.xaxis, "compaction pressure", "Pa")
    _label(ax.yaxis, "tensile strength", units[name])
    ax.grid(alpha=0.3)
    title = "main component" if colour_by == "main_component" else "formulation cluster (centre)"
    columns = 1 if max(len(group) for group in groups) > 40 else 2
    figure.legend(title=title, loc="outside lower center", fontsize=8, title_fontsize=8, ncols=columns)
    _save(figure, path)
    return Outcome(f"Tabletability: tensile strength against compaction pressure, coloured by {title}.")


def _series(value: object) -> list[float] | None:
    """A list of finite numbers, or None."""
    if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
        return None
    numbers = [float(v) for v in value]
    return numbers if all(math.isfinite(v) for v in numbers) else None


def plot_disintegration(data: CampaignData, path: Path) -> Outcome:
    sequence = {e.id: e.sequence for e in data.experiments}
    curves = []
    for analysis in data.current_analyses():
        time_s = _series(analysis.result.get("time_s"))
        area = _series(analysis.result.get("droplet_area_m2"))
        if analysis.kind == "disintegration" and time_s and area and len(time_s) == len(area) >= 2:
            curves.append((sequence.get(analysis.experiment_id, 0), time_s, area))
    if not curves:
        return _skip(
            "disintegration curves skipped: no disintegration analysis holds "
            "time_s and droplet_area_m2 series."
        )
    figure = _figure(6.4, 4.2)
    ax = figure.subplots()
    from matplotlib import cm, colormaps, colors  # noqa: PLC0415

    numbers = [number for number, _, _ in curves]
    scale = colors.Normalize(min(numbers), max(*numbers, min(numbers) + 1))
    for number, time_s, area in sorted(curves):
        colour = colormaps["viridis"](scale(number))
        ax.plot(time_s, [a * 1e6 for a in area], color=colour, label=f"#{number}")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("droplet area [mm²]")
    ax.grid(alpha=0.3)
    if len(curves) <= 12:
        ax.legend(title="experiment", fontsize=8, title_fontsize=8)
    else:
        figure.colorbar(cm.ScalarMappable(scale, "viridis"), ax=ax, label="experiment number")
    _save(figure, path)
    return Outcome("Disintegration: droplet area on the tablet against time, one curve per experiment.")

"""A campaign report: one self-contained HTML file with PNG plots written next to it.

Plots (matplotlib, Agg, no pyplot state): every measurement against the experiment number
with the running best; the Pareto front of two objectives; tabletability (tensile strength
against compaction pressure, coloured by main component or formulation cluster); disintegration
curves (droplet area against time) where analyses recorded the series. A plot whose data
is missing is skipped with a note in the report. Tables list the experiments, the failed
ones with their reasons, and the events. All text from the store is HTML-escaped.

Replicate measurements of the same name in one experiment are averaged for the plots.
"""

from __future__ import annotations

import html
import importlib.util
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tablet_workcell import __version__
from tablet_workcell.data.export import CampaignData, ExperimentData, ExportError, load_campaign
from tablet_workcell.data.store import ExperimentStore

if TYPE_CHECKING:
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

LOG = logging.getLogger(__name__)
Goal = Literal["max", "min"]
ColourBy = Literal["main_component", "cluster"]
KNOWN_GOALS: dict[str, Goal] = {"tensile_strength": "max", "disintegration_time": "min"}
UNIT_SUFFIXES = ("pa", "mpa", "s", "n", "m", "kg", "m2")  # "tensile_strength_pa" is "tensile_strength"
ENGINEERING_UNITS = {"Pa", "N", "m", "J", "W", "Hz", "V", "A"}  # tick labels with SI prefixes (MPa, mm)
DPI = 110


@dataclass(frozen=True)
class Objective:
    name: str  # measurement name
    goal: Goal


DEFAULT_PARETO = (Objective("tensile_strength", "max"), Objective("disintegration_time", "min"))


@dataclass(frozen=True)
class ReportResult:
    html: Path
    images: tuple[Path, ...]  # PNGs next to the HTML file
    notes: tuple[str, ...]  # plots skipped and why


def write_report(
    store: ExperimentStore,
    campaign_id: str,
    out_html: Path,
    *,
    pareto: tuple[Objective, Objective] = DEFAULT_PARETO,
    colour_by: ColourBy = "main_component",
) -> ReportResult:
    """Read a campaign and write its report to ``out_html`` (PNGs as ``<stem>-<plot>.png``)."""
    return render_report(load_campaign(store, campaign_id), out_html, pareto=pareto, colour_by=colour_by)


def render_report(
    data: CampaignData,
    out_html: Path,
    *,
    pareto: tuple[Objective, Objective] = DEFAULT_PARETO,
    colour_by: ColourBy = "main_component",
) -> ReportResult:
    _require_matplotlib()
    values, units = measurement_values(data)
    goals = objective_goals(data, pareto)
    notes: list[str] = []
    figures: list[tuple[Path, str]] = []  # image, caption
    try:
        out_html.parent.mkdir(parents=True, exist_ok=True)
        plots = (
            ("objectives", lambda path: _plot_objectives(data, values, units, goals, path)),
            ("pareto", lambda path: _plot_pareto(data, values, units, pareto, path)),
            ("tabletability", lambda path: _plot_tabletability(data, values, units, colour_by, path)),
            ("disintegration", lambda path: _plot_disintegration(data, path)),
        )
        for name, plot in plots:
            path = out_html.with_name(f"{out_html.stem}-{name}.png")
            outcome = plot(path)
            if outcome.skipped:
                notes.append(outcome.text)
                path.unlink(missing_ok=True)  # an image of an earlier report would be misleading
            else:
                figures.append((path, outcome.text))
        out_html.write_text(_html(data, values, units, figures, notes), encoding="utf-8")
    except OSError as error:
        raise ExportError(
            f"cannot write the report of campaign {data.id!r} to {out_html}: {error.strerror or error}. "
            "Choose a file in a directory you can write to."
        ) from error
    LOG.info("report of campaign %s written to %s", data.id, out_html)
    return ReportResult(out_html, tuple(path for path, _ in figures), tuple(notes))


# ---------------------------------------------------------------------- data
def measurement_values(data: CampaignData) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """name -> experiment id -> value (mean of replicates), and name -> unit."""
    sums: dict[str, dict[str, list[float]]] = {}
    units: dict[str, str] = {}
    for m in data.measurements:
        sums.setdefault(m.name, {}).setdefault(m.experiment_id, []).append(m.value)
        units.setdefault(m.name, m.unit)
    values = {name: {e: sum(v) / len(v) for e, v in by.items()} for name, by in sorted(sums.items())}
    return values, units


def resolve_name(name: str, names: Iterable[str]) -> str | None:
    """The measurement called ``name``, or else the one called ``name`` plus a unit suffix."""
    names = list(names)
    if name in names:
        return name
    matches = [n for n in names if n.startswith(f"{name}_") and n[len(name) + 1 :] in UNIT_SUFFIXES]
    return matches[0] if len(matches) == 1 else None


def objective_goals(data: CampaignData, pareto: Sequence[Objective] = ()) -> dict[str, Goal]:
    """Which way is better for each measurement: known names, the campaign description's
    ``objectives`` (``{name: "maximise"}`` or ``[{"name": .., "goal"|"direction": ..}]``), ``pareto``.
    Names are resolved with :func:`resolve_name`."""
    goals: dict[str, Goal] = dict(KNOWN_GOALS)
    declared = data.description.get("objectives")
    pairs: list[tuple[Any, Any]] = []
    if isinstance(declared, dict):
        pairs = list(declared.items())
    elif isinstance(declared, list):
        pairs = [
            (item.get("name"), item.get("goal") or item.get("direction") or item.get("sense"))
            for item in declared
            if isinstance(item, dict)
        ]
    for name, goal in pairs:
        word = str(goal).lower()
        if isinstance(name, str) and word[:3] in ("max", "min"):
            goals[name] = "max" if word.startswith("max") else "min"
    goals.update({objective.name: objective.goal for objective in pareto})
    names = {m.name for m in data.measurements}
    return {resolve_name(name, names) or name: goal for name, goal in goals.items()}


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
class _Outcome:
    text: str  # the caption, or why the plot was skipped
    skipped: bool = False


def _skip(text: str) -> _Outcome:
    return _Outcome(text, skipped=True)


def _require_matplotlib() -> None:
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


def _plot_objectives(
    data: CampaignData,
    values: dict[str, dict[str, float]],
    units: dict[str, str],
    goals: dict[str, Goal],
    path: Path,
) -> _Outcome:
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
    return _Outcome(
        "Each measurement against the experiment number; where its goal is known (campaign objectives), "
        "the running best of the completed experiments."
    )


def _plot_pareto(
    data: CampaignData,
    values: dict[str, dict[str, float]],
    units: dict[str, str],
    objectives: tuple[Objective, Objective],
    path: Path,
) -> _Outcome:
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
    return _Outcome(
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


def _plot_tabletability(
    data: CampaignData,
    values: dict[str, dict[str, float]],
    units: dict[str, str],
    colour_by: ColourBy,
    path: Path,
) -> _Outcome:
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
    return _Outcome(f"Tabletability: tensile strength against compaction pressure, coloured by {title}.")


def _series(value: object) -> list[float] | None:
    """A list of finite numbers, or None."""
    if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
        return None
    numbers = [float(v) for v in value]
    return numbers if all(math.isfinite(v) for v in numbers) else None


def _plot_disintegration(data: CampaignData, path: Path) -> _Outcome:
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
    return _Outcome("Disintegration: droplet area on the tablet against time, one curve per experiment.")


# ---------------------------------------------------------------------- HTML
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td, tr.fault td, tr.estop td { background: #fff0f0; }
figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; } dt { font-weight: bold; float: left; width: 12em; }
dd { margin-left: 13em; } .note { color: #8a5a00; } .wide { overflow-x: auto; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _table(headers: Sequence[str], rows: Sequence[tuple[Sequence[str], str]], numeric: set[int]) -> str:
    """Escaped HTML table; each row is (cells, css class)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{_e(css)}">'
        + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(cells)
        )
        + "</tr>"
        for cells, css in rows
    )
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _html(
    data: CampaignData,
    values: dict[str, dict[str, float]],
    units: dict[str, str],
    figures: list[tuple[Path, str]],
    notes: list[str],
) -> str:
    counts = {s: sum(e.status == s for e in data.experiments) for s in ("completed", "failed", "aborted")}
    software = (
        data.artifacts.get(data.software_artifact_id) if data.software_artifact_id is not None else None
    )
    summary = [
        ("campaign", data.id),
        ("name", data.name),
        ("cell", data.cell_id),
        ("status", data.status),
        ("started", _time(data.started_at)),
        ("ended", _time(data.ended_at)),
        ("experiments", f"{len(data.experiments)} ({', '.join(f'{n} {s}' for s, n in counts.items())})"),
        ("configuration sha256", data.config_hash),
        ("software", f"{software.name} {software.version} (sha256 {software.sha256})" if software else ""),
        *(
            (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
            for key, value in sorted(data.description.items())
        ),
    ]
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Campaign {_e(data.id)}</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Campaign report: {_e(data.name or data.id)}</h1><dl>",
        *(f"<dt>{_e(k)}</dt><dd>{_e(v) or '&ndash;'}</dd>" for k, v in summary),
        "</dl>",
    ]
    if not data.experiments:
        parts.append('<p class="note">This campaign has no experiments yet.</p>')
    if notes:
        parts.append("<ul>" + "".join(f'<li class="note">{_e(n)}</li>' for n in notes) + "</ul>")
    parts.append("<h2>Plots</h2>")
    for image, caption in figures:
        parts.append(
            f'<figure><img src="{_e(image.name)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    names = list(values)
    headers = ["#", "experiment", "status", "strategy", "pressure [MPa]", "recipe (mass fractions)"]
    headers += [f"{name} [{units[name]}]" for name in names]
    rows = [
        (
            [
                str(e.sequence),
                e.id,
                e.status,
                e.strategy,
                _number(e.compaction_pressure_pa / 1e6),
                ", ".join(f"{c.material} {c.mass_fraction:.3f}" for c in e.components),
                *(_number(values[name].get(e.id)) for name in names),
            ],
            "" if e.status == "completed" else "failed",
        )
        for e in data.experiments
    ]
    numeric = {0, 4, *range(6, 6 + len(names))}
    parts += ["<h2>Experiments</h2>", _table(headers, rows, numeric)]
    failed = [
        ([str(e.sequence), e.id, e.status, e.failure_reason], "failed")
        for e in data.experiments
        if e.status != "completed"
    ]
    parts.append("<h2>Failed experiments</h2>")
    parts.append(_table(["#", "experiment", "status", "reason"], failed, {0}) if failed else "<p>None.</p>")
    events = [
        ([_time(v.time), v.kind, v.source, v.experiment_id or "", v.message], v.kind) for v in data.events
    ]
    parts.append("<h2>Events</h2>")
    parts.append(
        _table(["time", "kind", "source", "experiment", "message"], events, set())
        if events
        else "<p>No events recorded.</p>"
    )
    parts.append(
        f"<p><small>Generated {_e(_time(datetime.now(UTC)))} "
        f"by tablet_workcell {_e(__version__)}.</small></p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)

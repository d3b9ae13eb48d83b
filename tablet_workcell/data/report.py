"""A campaign report: one self-contained HTML file with PNG plots written next to it.

Plots (matplotlib, Agg, no pyplot state): every measurement against the experiment number
with the running best; the Pareto front of two objectives; tabletability (tensile strength
against compaction pressure, coloured by main component or formulation cluster); disintegration
curves (droplet area against time) where analyses recorded the series. A plot whose data
is missing is skipped with a note in the report. Tables list the experiments, the failed
ones with their reasons, and the events. All text from the store is HTML-escaped.

Replicate measurements of the same name in one experiment are averaged for the plots.

This module reads the campaign, decides what to plot and assembles the HTML; the plots
themselves are drawn by :mod:`tablet_workcell.data.report_plots`, whose public names
(:class:`Objective`, :func:`resolve_name`, :func:`pareto_front`, :func:`formulation_clusters`)
are re-exported here.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tablet_workcell import __version__
from tablet_workcell.data.report_plots import (
    ColourBy,
    Goal,
    Objective,
    formulation_clusters,
    pareto_front,
    plot_disintegration,
    plot_objectives,
    plot_pareto,
    plot_tabletability,
    require_matplotlib,
    resolve_name,
)
from tablet_workcell.data.snapshot import CampaignData, ExportError, load_campaign
from tablet_workcell.data.store import ExperimentStore

__all__ = [
    "DEFAULT_PARETO",
    "KNOWN_GOALS",
    "ColourBy",
    "Goal",
    "Objective",
    "ReportResult",
    "formulation_clusters",
    "measurement_values",
    "objective_goals",
    "pareto_front",
    "render_report",
    "resolve_name",
    "write_report",
]

LOG = logging.getLogger(__name__)
KNOWN_GOALS: dict[str, Goal] = {"tensile_strength": "max", "disintegration_time": "min"}
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
    require_matplotlib()
    values, units = measurement_values(data)
    goals = objective_goals(data, pareto)
    notes: list[str] = []
    figures: list[tuple[Path, str]] = []  # image, caption
    try:
        out_html.parent.mkdir(parents=True, exist_ok=True)
        plots = (
            ("objectives", lambda path: plot_objectives(data, values, units, goals, path)),
            ("pareto", lambda path: plot_pareto(data, values, units, pareto, path)),
            ("tabletability", lambda path: plot_tabletability(data, values, units, colour_by, path)),
            ("disintegration", lambda path: plot_disintegration(data, path)),
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

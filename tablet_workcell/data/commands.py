"""``workcell data``: look into the experiment store, export a campaign, write its report.

    workcell data list [--campaign ID [--status STATUS]]
    workcell data show EXPERIMENT_ID
    workcell data export CAMPAIGN_ID --out DIR [--format csv,parquet] [--license ID]
    workcell data report CAMPAIGN_ID --out FILE.html [--pareto A:max,B:min] [--colour-by cluster]

Every command takes ``--store URL`` (default ``$TABLET_WORKCELL_STORE`` or
``sqlite:///runs/workcell.sqlite``). Output for the user goes to stdout; a store or export
problem is one line ``error: ...`` on stderr and exit code 2.

The main command line mounts these with :func:`add_data_commands` and runs the chosen one
with :func:`run_data_command`; :func:`main` runs them standalone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from tablet_workcell.data.export import FORMATS, export_campaign
from tablet_workcell.data.records import STATUSES
from tablet_workcell.data.report import DEFAULT_PARETO, Objective, write_report
from tablet_workcell.data.snapshot import CampaignData, load_experiment, require_campaign
from tablet_workcell.data.store import ExperimentStore, StoreError, default_url
from tablet_workcell.errors import WorkcellError

Handler = Callable[[argparse.Namespace], int]


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _formats(value: str) -> list[str]:
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"format {', '.join(unknown) or value!r} unknown; "
            f"use a comma-separated list of {', '.join(FORMATS)}"
        )
    return formats


def _objectives(value: str) -> tuple[Objective, Objective]:
    pairs = [item.strip().rpartition(":") for item in value.split(",")]
    if len(pairs) != 2 or any(not name or goal not in ("max", "min") for name, _, goal in pairs):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not two objectives like tensile_strength:max,porosity:min"
        )
    first, second = (Objective(name, "max" if goal == "max" else "min") for name, _, goal in pairs)
    return first, second


def add_data_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``data`` and its commands to a parser's subcommands; run the parsed one with
    :func:`run_data_command`."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        metavar="URL",
        help="experiment store, an SQLAlchemy URL (default: $TABLET_WORKCELL_STORE or "
        "sqlite:///runs/workcell.sqlite)",
    )
    text = "look into the experiment store, export a campaign, write its report"
    data = subparsers.add_parser("data", help=text, description=text)
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[store], help=text, description=text)
        parser.set_defaults(data_handler=handler)
        return parser

    listing = command("list", command_list, "list the campaigns, or the experiments of one campaign")
    listing.add_argument("--campaign", metavar="CAMPAIGN_ID", help="list this campaign's experiments")
    listing.add_argument("--status", choices=STATUSES, help="only experiments with this status")
    show = command("show", command_show, "show one experiment: recipe, process, results, provenance")
    show.add_argument("experiment_id", metavar="EXPERIMENT_ID")
    export = command(
        "export", command_export, "export a campaign as CSV/Parquet tables with RO-Crate metadata"
    )
    export.add_argument("campaign_id", metavar="CAMPAIGN_ID")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write into")
    export.add_argument(
        "--format",
        dest="formats",
        type=_formats,
        default=list(FORMATS),
        metavar="LIST",
        help=f"comma-separated table formats (default: {','.join(FORMATS)})",
    )
    export.add_argument(
        "--license",
        default="",
        metavar="ID",
        help="licence of the exported data for the RO-Crate, e.g. https://spdx.org/licenses/CC-BY-4.0",
    )
    report = command("report", command_report, "write a campaign's HTML report with PNG plots")
    report.add_argument("campaign_id", metavar="CAMPAIGN_ID")
    report.add_argument("--out", type=Path, required=True, metavar="FILE.html", help="HTML file to write")
    report.add_argument(
        "--pareto",
        type=_objectives,
        default=DEFAULT_PARETO,
        metavar="A:max,B:min",
        help="the two objectives of the Pareto plot (default: tensile_strength:max,disintegration_time:min)",
    )
    report.add_argument(
        "--colour-by",
        choices=("main_component", "cluster"),
        default="main_component",
        help="colour of the tabletability points: main component or formulation cluster",
    )


def run_data_command(args: argparse.Namespace) -> int:
    """Run the ``data`` command ``args`` were parsed for; returns the exit code."""
    handler: Handler = args.data_handler
    try:
        return handler(args)
    except WorkcellError as error:  # StoreError, ExportError and their kin: one sentence each
        sys.stderr.write(f"error: {error}\n")
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workcell")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    return run_data_command(parser.parse_args(argv))


# ---------------------------------------------------------------------- store
def _open(args: argparse.Namespace) -> ExperimentStore:
    """Open the store for reading: never creates a database, never migrates one."""
    url = args.store or default_url()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise StoreError(
                f"there is no experiment store at {path}; pass --store URL or set $TABLET_WORKCELL_STORE."
            )
    try:
        store = ExperimentStore.open(url, migrate=False)
    except (ArgumentError, NoSuchModuleError) as error:
        raise StoreError(f"--store {url!r} is not a database URL the store can open ({error}).") from error
    if store.schema_revision() is None:
        store.close()
        raise StoreError(f"{store.url} is not an experiment store (it has no schema); check --store.")
    return store


def _aligned(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _number(value: float) -> str:
    return f"{value:.4g}"


# ---------------------------------------------------------------------- commands
def command_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if not args.campaign and not args.status:
            campaigns = store.campaigns()
            experiments = []
        else:
            if args.campaign:
                require_campaign(store, args.campaign)
            experiments = store.experiments(args.campaign, args.status)
    if not args.campaign and not args.status:
        if not campaigns:
            _out(f"no campaigns in {store.url}")
        headers = ["CAMPAIGN", "NAME", "CELL", "STATUS", "STARTED (UTC)", "EXPERIMENTS", "FAILED"]
        rows = [
            [
                c.id,
                c.name,
                c.cell_id,
                c.status,
                f"{c.started_at:%Y-%m-%d %H:%M}",
                str(c.experiments),
                str(c.failed),
            ]
            for c in campaigns
        ]
    else:
        if not experiments:
            where = f"campaign {args.campaign}" if args.campaign else "the store"
            _out(f"no {args.status + ' ' if args.status else ''}experiments in {where}")
        names = sorted({name for e in experiments for name in e.measurements})
        units = {name: unit for e in experiments for name, (_, unit) in e.measurements.items()}
        headers = [
            "CAMPAIGN",
            "#",
            "EXPERIMENT",
            "STATUS",
            "PRESSURE_MPA",
            *(f"{n} [{units[n]}]" for n in names),
        ]
        rows = [
            [
                e.campaign_id,
                str(e.sequence),
                e.id,
                e.status,
                _number(e.process["compaction_pressure_pa"] / 1e6),
                *(_number(e.measurements[n][0]) if n in e.measurements else "-" for n in names),
            ]
            + ([e.failure_reason] if any(x.failure_reason for x in experiments) else [])
            for e in experiments
        ]
        headers += ["REASON"] if any(e.failure_reason for e in experiments) else []
    if rows:
        for line in _aligned(headers, rows):
            _out(line)
    return 0


def command_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        data = load_experiment(store, args.experiment_id)
    for line in describe_experiment(data):
        _out(line)
    return 0


def describe_experiment(data: CampaignData) -> list[str]:
    """The lines ``workcell data show`` prints for the one experiment in ``data``."""
    e = data.experiments[0]
    lines = [f"experiment {e.id}  (campaign {data.id}, #{e.sequence})", f"  status:    {e.status}"]
    if e.failure_reason:
        lines.append(f"  reason:    {e.failure_reason}")
    lines += [f"  strategy:  {e.strategy or '-'}", f"  created:   {e.created_at:%Y-%m-%d %H:%M:%S} UTC"]
    width = max([len(c.material) for c in e.components] + [len(m.name) for m in data.measurements] + [22])
    lines.append("recipe (mass fractions):")
    lines += [f"  {c.material:<{width}}  {c.mass_fraction:.4f}  lot {c.lot or '-'}" for c in e.components]
    lines.append("process:")
    lines += [f"  {name:<{width}}  {value:.6g}" for name, value in e.process.items()]
    lines.append("measurements:" if data.measurements else "measurements: none")
    kinds = {a.id: a.kind for a in data.analyses}
    for m in data.measurements:
        source = []
        if m.instrument_id is not None:
            instrument = data.instruments[m.instrument_id]
            source.append(f"{instrument.kind} {instrument.serial_number}")
        if m.analysis_result_id is not None:
            source.append(f"analysis {kinds[m.analysis_result_id]} #{m.analysis_result_id}")
        value = f"{m.value:.6g}" + (f" {m.unit}" if m.unit != "1" else "")
        lines.append(f"  {m.name:<{width}}  {value}" + (f"  ({', '.join(source)})" if source else ""))
    lines.append("analyses:" if data.analyses else "analyses: none")
    for a in data.analyses:
        recording = data.recordings.get(a.recording_id) if a.recording_id is not None else None
        model = data.artifacts.get(a.model_artifact_id) if a.model_artifact_id is not None else None
        own = a.software_artifact_id is not None
        software_id = a.software_artifact_id if own else data.software_artifact_id
        software = data.artifacts.get(software_id) if software_id is not None else None
        recording_text = f"{recording.path}  sha256 {recording.sha256}" if recording else "-"
        model_text = f"{model.name} {model.version}  sha256 {model.sha256}" if model else "-"
        software_text = f"{software.name} {software.version}  sha256 {software.sha256}" if software else "-"
        software_text += "  (the campaign's)" if software and not own else ""
        lines += [
            f"  {a.kind} #{a.id}  ({a.created_at:%Y-%m-%d %H:%M:%S} UTC)"
            + (f"  supersedes #{a.supersedes_id}" if a.supersedes_id else ""),
            f"    recording:   {recording_text}",
            f"    model:       {model_text}",
            f"    software:    {software_text}",
            f"    config hash: {a.config_hash or '-'}",
        ]
    if data.events:
        lines.append("events:")
        lines += [
            f"  {v.time:%Y-%m-%d %H:%M:%S}  {v.kind:<8} {v.source:<16} {v.message}" for v in data.events
        ]
    return lines


def command_export(args: argparse.Namespace) -> int:
    with _open(args) as store:
        result = export_campaign(store, args.campaign_id, args.out, args.formats, license_id=args.license)
    _out(f"exported campaign {result.campaign_id} to {result.directory}:")
    for path in result.files:
        _out(f"  {path.name}")
    for warning in result.warnings:
        _out(f"warning: {warning}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    with _open(args) as store:
        result = write_report(store, args.campaign_id, args.out, pareto=args.pareto, colour_by=args.colour_by)
    _out(f"report of campaign {args.campaign_id} written to {result.html}")
    for path in result.images:
        _out(f"  {path.name}")
    for note in result.notes:
        _out(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

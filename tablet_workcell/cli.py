"""``workcell``: bring the cell's node graph up without ROS 2's launch tooling.

    workcell check [--real]            validate config/workcell.yaml, show the resolved graph
    workcell up [--sim|--real]         start the graph; Ctrl-C stops it cleanly
    workcell demo [--sim]              start the graph, show it alive end to end, stop
    workcell data list|show|export|report   search and export the experiment store
    workcell analyse-video RECORDING   re-analyse a recorded disintegration test (or --bag FILE)

It reads the same description as ``launch/workcell.launch.py`` (see
tablet_workcell.bringup). Errors in the description are reported as one sentence and
exit code 2; a node that dies takes the graph down with exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tablet_workcell import __version__
from tablet_workcell.bringup.description import GraphDescription, load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import plan_processes
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.data.commands import add_data_commands, run_data_command
from tablet_workcell.errors import ConfigError, WorkcellError
from tablet_workcell.vision.commands import add_vision_commands, run_analyse_video

logger = logging.getLogger("workcell")


def _domain_id(value: str) -> int:
    try:
        domain = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ROS domain id {value!r} is not an integer (use 0-101)") from None
    if not 0 <= domain <= 101:
        raise argparse.ArgumentTypeError(f"ROS domain id {domain} is outside 0-101 (the portable range)")
    return domain


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be greater than 0")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workcell", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"tablet_workcell {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("check", "validate the graph description and show what would run"),
        ("up", "start the node graph until Ctrl-C (or --duration)"),
        ("demo", "start the graph, exercise it end to end, stop"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        mode = command.add_mutually_exclusive_group()
        mode.add_argument(
            "--sim",
            dest="sim",
            action="store_true",
            default=True,
            help="simulated instruments and clock (default)",
        )
        mode.add_argument("--real", dest="sim", action="store_false", help="real instruments")
        command.add_argument("--config", type=Path, help="graph description (default: config/workcell.yaml)")
        command.add_argument(
            "--rtf",
            type=_positive_float,
            metavar="FACTOR",
            help="real-time factor of the simulated clock (overrides the config)",
        )
        if name != "check":
            command.add_argument(
                "--domain-id",
                type=_domain_id,
                default=_domain_id(os.environ.get("ROS_DOMAIN_ID", "0") or "0"),
                help="ROS_DOMAIN_ID for the graph (default: $ROS_DOMAIN_ID or 0)",
            )
            command.add_argument(
                "--run-dir",
                type=Path,
                help="where parameter files and logs of this run go (default: runs/<time>)",
            )
        if name == "up":
            command.add_argument(
                "--duration",
                type=_positive_float,
                metavar="SECONDS",
                help="stop after this many seconds (default: run until Ctrl-C)",
            )
    add_data_commands(commands)
    add_vision_commands(commands)
    return parser


def _load(args: argparse.Namespace) -> GraphDescription:
    overrides: dict[str, dict[str, object]] = {}
    path = args.config or default_graph_path()
    if args.rtf is not None:
        if not args.sim:
            raise ConfigError("--rtf applies to the simulated clock only; drop it or use --sim.")
        overrides["sim_clock"] = {"real_time_factor": args.rtf}
    return load_graph(path, sim=args.sim, parameter_overrides=overrides)


def _run_directory(args: argparse.Namespace) -> Path:
    if args.run_dir is not None:
        return Path(args.run_dir)
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def command_check(args: argparse.Namespace) -> int:
    graph = _load(args)
    print(
        f"{graph.source}: valid, {len(graph.nodes)} nodes ({'simulated' if graph.sim else 'real'} hardware)"
    )
    for node in graph.nodes:
        print(f"  {node.namespace}/{node.name}  ({node.module})")
        for key, value in sorted(node.parameters.items()):
            print(f"      {key}: {value}")
    for key, value in sorted(graph.environment.items()):
        print(f"  env {key}={value}")
    return 0


def command_up(args: argparse.Namespace) -> int:
    graph = _load(args)
    specs = plan_processes(graph, _run_directory(args), args.domain_id)
    logger.info(
        "starting %d nodes on ROS_DOMAIN_ID=%d: %s",
        len(specs),
        args.domain_id,
        ", ".join(spec.name for spec in specs),
    )
    with GraphSupervisor(specs) as supervisor:
        try:
            supervisor.watch(args.duration)
        except KeyboardInterrupt:
            logger.info("Ctrl-C: stopping the graph")
    logger.info("all nodes stopped")
    return 0


def command_demo(args: argparse.Namespace) -> int:
    # Imported here: check/up must work (and stay fast) without loading rclpy.
    from tablet_workcell.ros.demo_tablet import make_one_tablet  # noqa: PLC0415
    from tablet_workcell.ros.graph_probe import GraphProbe  # noqa: PLC0415

    graph = _load(args)
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id)
    os.environ.update(graph.environment)
    specs = plan_processes(graph, _run_directory(args), args.domain_id)
    names = [node.name for node in graph.nodes]
    with GraphSupervisor(specs) as supervisor, GraphProbe("workcell_demo") as probe:
        took = probe.wait_for_nodes(names)
        print(f"graph alive after {took:.1f} s: {', '.join(names)}")
        if graph.sim:
            requested = graph.node("sim_clock").parameters["real_time_factor"]
            print(
                f"simulated clock: {probe.measure_real_time_factor():.2f}x real time (requested {requested}x)"
            )
        status = probe.latest_status()
        print(
            "stations: " + ", ".join(f"{s.station}={_STATES.get(s.state, s.state)}" for s in status.stations)
        )
        trip = probe.estop_round_trip(operator_id="demo-operator")
        print(f"e-stop engaged -> cell ESTOPPED in {trip.engage_to_status_s * 1000:.0f} ms")
        print(f"reset without operator refused: {trip.refused_reset_message}")
        print(f"reset by demo-operator -> cell running again in {trip.reset_to_status_s * 1000:.0f} ms")
        suggestions = []
        if any(node.executable == "optimiser" for node in graph.nodes):
            suggestions = list(probe.suggest(3).suggestions)
            for suggestion in suggestions:
                recipe = suggestion.recipe
                blend = ", ".join(f"{c.name} {c.mass_fraction:.3f}" for c in recipe.components)
                print(
                    f"optimiser suggests {recipe.experiment_id} ({suggestion.strategy}): {blend}; "
                    f"{recipe.compaction_pressure_pa / 1e6:.0f} MPa"
                )
        instruments = graph.sim and {node.executable for node in graph.nodes} >= INSTRUMENT_NODES
        speed = graph.simulators[0].time_scale if graph.simulators else 1.0
        if instruments and suggestions and speed > DEMO_TABLET_MAX_RTF:
            print(
                f"one tablet by hand: skipped at {speed:g}x; the dosing loop's simulated balance and feeders "
                f"keep up to {DEMO_TABLET_MAX_RTF:g}x real time "
                f"(run the demo with --rtf {DEMO_TABLET_MAX_RTF:g} or less)"
            )
        elif instruments and suggestions:
            first = suggestions[0].recipe
            print(f"one tablet by hand through the simulated instruments ({first.experiment_id}):")
            make_one_tablet(probe, first, lambda line: print(f"  {line}"))
        if supervisor.exited():
            raise WorkcellError(supervisor.describe_exit(supervisor.exited()[0]))
    print("demo complete: all nodes stopped cleanly")
    return 0


INSTRUMENT_NODES = {"arm", "dispenser", "press", "syringe_pump"}
DEMO_TABLET_MAX_RTF = 5.0
_STATES = {0: "OFFLINE", 1: "UNCONFIGURED", 2: "IDLE", 3: "BUSY", 4: "FAULT", 5: "ESTOPPED"}
COMMANDS = {"check": command_check, "up": command_up, "demo": command_demo}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter is not for operators
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    if args.command == "data":
        return run_data_command(args)
    if args.command == "analyse-video":
        return run_analyse_video(args)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        logger.error("error: %s", error)
        return 2
    except WorkcellError as error:
        logger.error("error: %s (after %.1f s)", error, time.monotonic() - started)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

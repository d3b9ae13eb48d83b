"""Parameters every instrument node shares (declared once, validated before launch)."""

from __future__ import annotations

from tablet_workcell.parameters import ParamSpec


def port_parameters(prefix: str = "", baudrate: int = 9600) -> tuple[ParamSpec, ...]:
    """Port settings of one instrument; ``prefix`` (e.g. ``balance_``) when a node has several."""
    return (
        ParamSpec(
            f"{prefix}port",
            "str",
            "",
            "serial port: a device path (/dev/ttyUSB0), a simulator's pty link, socket://host:port",
        ),
        ParamSpec(f"{prefix}baudrate", "int", baudrate, "serial baud rate", minimum=300, maximum=921600),
        ParamSpec(
            f"{prefix}timeout_s", "float", 1.0, "longest wait for one reply [s]", minimum=0.05, maximum=30.0
        ),
    )


DEVICE_NODE_PARAMETERS = (
    ParamSpec(
        "simulated", "bool", False, "the ports lead to simulators (reported in status and diagnostics)"
    ),
    ParamSpec(
        "autostart",
        "bool",
        True,
        "configure and activate at start-up (as a lifecycle manager with autostart would)",
    ),
    ParamSpec(
        "connect_timeout_s",
        "float",
        20.0,
        "how long configuring waits for the port to appear and the instrument to answer [s]",
        minimum=0.0,
        maximum=600.0,
    ),
    ParamSpec(
        "status_period_s",
        "float",
        0.5,
        "period of station status (the safety watchdog's heartbeat) and diagnostics [s]",
        minimum=0.02,
        maximum=10.0,
    ),
    ParamSpec(
        "traffic_log_dir",
        "str",
        "",
        "when set, every byte to and from the instruments is logged there as JSON lines",
    ),
)

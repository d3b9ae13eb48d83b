"""Parameters of the syringe-pump node, declared once.

The catalog validates the graph description against :data:`SYRINGE_PUMP_PARAMETERS`;
the node declares :data:`SYRINGE_PUMP_SPECS` (its base class declares the shared
instrument-node parameters).
"""

from __future__ import annotations

from tablet_workcell.devices.node_parameters import DEVICE_NODE_PARAMETERS, port_parameters
from tablet_workcell.parameters import ParamSpec

SYRINGE_PUMP_SPECS: tuple[ParamSpec, ...] = (
    *port_parameters("", 19200),
    ParamSpec("address", "int", 0, "pump address on the RS-232 line (0-99)", minimum=0, maximum=99),
    ParamSpec(
        "syringe_diameter_mm",
        "float",
        4.699,
        "inner diameter of the fitted syringe (syringe maker's table) [mm]; set on the pump at configure",
        minimum=0.1,
        maximum=50.0,
    ),
    ParamSpec(
        "default_volume_m3",
        "float",
        5e-9,
        "droplet volume when a goal gives volume_m3 0 [m^3] (5e-9 m^3 = 5 µL)",
        minimum=1e-12,
        maximum=1e-6,
    ),
    ParamSpec(
        "default_flow_rate_m3_per_s",
        "float",
        100e-9 / 60.0,
        "infusion rate when a goal gives flow_rate_m3_per_s 0 [m^3/s] (1.667e-9 m^3/s = 100 µL/min)",
        minimum=1e-15,
        maximum=1e-6,
    ),
    ParamSpec(
        "max_volume_m3",
        "float",
        50e-9,
        "largest droplet a goal may ask for [m^3]; guards the tablet against a volume in the wrong unit",
        minimum=1e-12,
        maximum=1e-5,
    ),
    ParamSpec(
        "timeout_margin_s",
        "float",
        5.0,
        "a droplet fails after twice its expected time plus this margin [s]",
        minimum=0.0,
        maximum=600.0,
    ),
    ParamSpec(
        "poll_period_s",
        "float",
        0.05,
        "period of the dispensed-volume query while a droplet runs (feedback rate) [s]",
        minimum=0.005,
        maximum=1.0,
    ),
)

SYRINGE_PUMP_PARAMETERS: tuple[ParamSpec, ...] = (*DEVICE_NODE_PARAMETERS, *SYRINGE_PUMP_SPECS)

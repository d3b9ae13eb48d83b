"""Parameters of the dispenser node (balance + dosing-head bus), declared once.

The catalog validates the graph description against :data:`DISPENSER_PARAMETERS` before
launch; the node declares :data:`DISPENSER_SPECS` (the shared instrument-node parameters
are declared by its base class).
"""

from __future__ import annotations

from tablet_workcell.devices.node_parameters import DEVICE_NODE_PARAMETERS, port_parameters
from tablet_workcell.parameters import ParamSpec

#: the powders of the cell's campaigns (config/optimiser.yaml), one head each
DEFAULT_HEADS = [
    "1:microcrystalline_cellulose",
    "2:lactose_monohydrate",
    "3:croscarmellose_sodium",
    "4:sodium_starch_glycolate",
    "5:magnesium_stearate",
]

DISPENSER_SPECS: tuple[ParamSpec, ...] = (
    *port_parameters("balance_", 9600),
    *port_parameters("dosing_", 9600),
    ParamSpec(
        "heads",
        "str_array",
        DEFAULT_HEADS,
        "dosing heads as ADDRESS:POWDER (bus address 1-31, the powder name recipes use); "
        "configuring checks each head reports that powder",
    ),
    ParamSpec(
        "time_scale",
        "float",
        1.0,
        "instrument seconds per wall second: 1 on hardware, the simulators' time scale in simulation",
        minimum=0.01,
        maximum=1000.0,
    ),
    ParamSpec(
        "default_tolerance_kg",
        "float",
        0.5e-6,
        "absolute tolerance per component when a goal gives tolerance_kg 0 [kg]",
        minimum=1e-9,
        maximum=1e-3,
    ),
    ParamSpec(
        "default_rel_tolerance",
        "float",
        0.02,
        "relative tolerance per component when a goal gives tolerance_kg 0 (the larger one applies)",
        minimum=0.0,
        maximum=0.5,
    ),
    ParamSpec(
        "max_recipe_mass_kg",
        "float",
        2e-3,
        "most powder one goal may dose in all [kg]; guards against targets given in the wrong unit",
        minimum=1e-6,
        maximum=0.2,
    ),
    ParamSpec(
        "dose_timeout_s",
        "float",
        120.0,
        "longest one component may take, in instrument seconds [s]",
        minimum=1.0,
        maximum=3600.0,
    ),
    ParamSpec("max_top_ups", "int", 3, "top-ups after the first stop before a dose counts as short", 0, 10),
    ParamSpec(
        "check_hopper",
        "bool",
        True,
        "refuse a dose the hopper cannot hold (by the head's level) before feeding",
    ),
    ParamSpec(
        "balance_stable_timeout_s",
        "float",
        30.0,
        "longest wait for a stable balance reading (tare, final mass) [s]",
        minimum=1.0,
        maximum=600.0,
    ),
    ParamSpec(
        "balance_period_s",
        "float",
        0.2,
        "period of the balance reading on ~/balance_mass while no dose runs [s]",
        minimum=0.02,
        maximum=10.0,
    ),
)

DISPENSER_PARAMETERS: tuple[ParamSpec, ...] = (*DEVICE_NODE_PARAMETERS, *DISPENSER_SPECS)

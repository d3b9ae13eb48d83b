"""Parameters of the optimiser node (kept apart so the node catalog loads no solver)."""

from tablet_workcell.parameters import ParamSpec

OPTIMISER_PARAMETERS = (
    ParamSpec(
        "config_path",
        "str",
        "config/optimiser.yaml",
        "experiment design (search space, objectives, constraints, strategy); relative to the package share",
        is_path=True,
    ),
    ParamSpec("campaign_id", "str", "campaign", "campaign whose experiments the optimiser learns from"),
    ParamSpec(
        "store_url", "str", "", "experiment store; empty: $TABLET_WORKCELL_STORE or runs/workcell.sqlite"
    ),
    ParamSpec(
        "target_tablet_mass_kg",
        "float",
        100e-6,
        "tablet mass of every suggested recipe [kg]",
        minimum=1e-6,
        maximum=1e-3,
    ),
    ParamSpec(
        "punch_diameter_m",
        "float",
        8e-3,
        "punch diameter of every suggested recipe [m]",
        minimum=1e-3,
        maximum=20e-3,
    ),
    ParamSpec(
        "dwell_time_s",
        "float",
        0.5,
        "dwell of suggested recipes unless the space varies it [s]",
        minimum=0.0,
        maximum=60.0,
    ),
    ParamSpec("max_batch", "int", 8, "most suggestions one request may ask for", minimum=1, maximum=64),
)

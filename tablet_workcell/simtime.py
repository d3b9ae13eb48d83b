"""Simulated time for campaigns that run faster (or slower) than real time.

Every node of the cell follows ROS time. In simulation one ``sim_clock`` node publishes
``/clock`` and every other node runs with ``use_sim_time``; the simulators and the
twin advance with that clock, so a CI campaign at 100x real time exercises exactly the
code that runs at 1x on hardware.

The clock advances in ticks: ``publish_rate_hz`` ticks per real second, each advancing
simulated time by ``real_time_factor / publish_rate_hz`` seconds. Ticks are computed
from the real monotonic clock rather than counted, so a late tick (a busy machine)
does not make simulated time drift from the requested factor.
"""

from __future__ import annotations

from dataclasses import dataclass

from tablet_workcell.errors import ConfigError
from tablet_workcell.parameters import ParamSpec

CLOCK_PARAMETERS = (
    ParamSpec(
        "real_time_factor",
        "float",
        1.0,
        "simulated seconds per real second (1 for demos, 100 or more for CI)",
        minimum=0.01,
        maximum=10000.0,
    ),
    ParamSpec(
        "publish_rate_hz",
        "float",
        100.0,
        "how many /clock messages are published per real second",
        minimum=1.0,
        maximum=1000.0,
        read_only=True,
    ),
    ParamSpec(
        "start_time_s",
        "float",
        0.0,
        "simulated time at start-up [s] (0 gives reproducible campaigns)",
        minimum=0.0,
        read_only=True,
    ),
)

NANOSECONDS_PER_SECOND = 1_000_000_000


@dataclass
class SimClock:
    """Maps real monotonic time to simulated time at a fixed real-time factor.

    The factor can be changed while running; simulated time stays continuous across
    the change. Pausing is a factor of zero applied by the caller.
    """

    real_time_factor: float
    start_time_ns: int
    real_origin_ns: int

    def __post_init__(self) -> None:
        self._check_factor(self.real_time_factor)
        self._sim_origin_ns = self.start_time_ns

    @staticmethod
    def _check_factor(factor: float) -> None:
        if not factor > 0.0:
            raise ConfigError(
                f"real-time factor {factor!r} must be greater than 0; use 1.0 for real time "
                "or e.g. 100.0 to run 100 times faster."
            )

    def now_ns(self, real_now_ns: int) -> int:
        """Simulated time [ns] at real monotonic time ``real_now_ns``."""
        elapsed_real = max(0, real_now_ns - self.real_origin_ns)
        return self._sim_origin_ns + round(elapsed_real * self.real_time_factor)

    def set_factor(self, factor: float, real_now_ns: int) -> None:
        """Change the speed without a jump in simulated time."""
        self._check_factor(factor)
        self._sim_origin_ns = self.now_ns(real_now_ns)
        self.real_origin_ns = real_now_ns
        self.real_time_factor = factor

    def tick_period_s(self, publish_rate_hz: float) -> float:
        """Real seconds between two /clock messages."""
        return 1.0 / publish_rate_hz

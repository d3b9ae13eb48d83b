"""The safety node's zone interlocks and heartbeat watchdog, on a real ROS graph."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tablet_workcell.bringup.processes import node_process
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.msg import StationStatus
from tablet_workcell.ros.graph_probe import GraphProbe
from tablet_workcell.ros.qos import STATUS
from tablet_workcell.srv import EmergencyStop, ZoneAccess


@pytest.fixture
def safety(ros_domain_id: int) -> Iterator[GraphSupervisor]:
    with GraphSupervisor([node_process("safety", "safety", {"heartbeat_timeout_s": 0.5})]) as supervisor:
        yield supervisor


def zone(probe: GraphProbe, station: str, acquire: bool, operator_id: str = "") -> ZoneAccess.Response:
    request = ZoneAccess.Request(station=station, zone="press", acquire=acquire, operator_id=operator_id)
    response: ZoneAccess.Response = probe.call(ZoneAccess, "/safety/zone_access", request, timeout_s=20.0)
    return response


def test_the_press_zone_is_exclusive_between_arm_and_press(safety: GraphSupervisor) -> None:
    with GraphProbe("zone_probe") as probe:
        probe.wait_for_nodes(["safety"])
        assert zone(probe, "arm", True).granted
        refused = zone(probe, "press", True)
        assert not refused.granted and refused.holder == "arm"
        assert not zone(probe, "press", False).granted  # the press cannot free the arm's hold
        assert zone(probe, "arm", False).granted
        assert zone(probe, "press", True).granted
        unknown = probe.call(
            ZoneAccess, "/safety/zone_access", ZoneAccess.Request(station="arm", zone="oven", acquire=True)
        )
        assert not unknown.granted and "unknown zone 'oven'" in unknown.message


def test_a_station_that_falls_silent_engages_the_estop(safety: GraphSupervisor) -> None:
    with GraphProbe("watchdog_probe") as probe:
        probe.wait_for_nodes(["safety"])
        assert zone(probe, "press", True).granted
        publisher = probe.node.create_publisher(StationStatus, "/workcell/station_status", STATUS)
        deadline = time.monotonic() + 20.0
        # Heartbeats until the safety node has certainly heard one (discovery is asynchronous).
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        for _ in range(10):
            publisher.publish(StationStatus(station="press", state=StationStatus.STATE_BUSY))
            time.sleep(0.05)
        assert not probe.latest_estop().active
        silent_since = time.monotonic()
        state = probe.wait_for_estop(lambda s: s.active, "the watchdog to engage the e-stop", timeout_s=10.0)
        assert state.source == "watchdog"
        assert "no heartbeat from press" in state.reason and "holding the press zone" in state.reason
        assert time.monotonic() - silent_since < 5.0
        assert not zone(probe, "arm", True).granted  # still held by the silent press
        # After checking the cell an operator frees the dead station's hold and resets.
        assert zone(probe, "arm", False, operator_id="op-1").granted
        reset = probe.call(
            EmergencyStop, "/safety/set_estop", EmergencyStop.Request(engage=False, operator_id="op-1")
        )
        assert reset.success

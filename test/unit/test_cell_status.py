from __future__ import annotations

from tablet_workcell.cell_status import CellMode, CellStatusAggregator, StationReport, StationState


def test_expected_station_never_heard_is_offline() -> None:
    aggregator = CellStatusAggregator(stale_after_s=1.0, expected_stations=["press"])
    snapshot = aggregator.snapshot(now_s=100.0)
    assert [(s.station, s.state) for s in snapshot.stations] == [("press", StationState.OFFLINE)]
    assert snapshot.mode is CellMode.IDLE


def test_silent_station_goes_offline_after_the_timeout() -> None:
    aggregator = CellStatusAggregator(stale_after_s=1.0)
    aggregator.update_station(StationReport("press", StationState.BUSY, received_s=10.0))
    assert aggregator.snapshot(10.5).mode is CellMode.RUNNING
    late = aggregator.snapshot(11.5)
    assert (
        late.stations[0].state is StationState.OFFLINE and "no status for 1.5 s" in late.stations[0].message
    )


def test_estop_dominates_fault_which_dominates_busy() -> None:
    aggregator = CellStatusAggregator(stale_after_s=10.0)
    aggregator.update_station(StationReport("arm", StationState.BUSY, received_s=0.0))
    aggregator.update_station(StationReport("press", StationState.FAULT, received_s=0.0))
    assert aggregator.snapshot(0.0).mode is CellMode.FAULT
    aggregator.update_estop(True, "door")
    snapshot = aggregator.snapshot(0.0)
    assert snapshot.mode is CellMode.ESTOPPED and snapshot.estop_reason == "door"
    aggregator.update_estop(False, "ignored when clear")
    assert aggregator.snapshot(0.0).estop_reason == ""

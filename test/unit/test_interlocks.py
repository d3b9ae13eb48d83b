"""Zone interlocks and the heartbeat watchdog (the safety node's logic)."""

from __future__ import annotations

import pytest

from tablet_workcell.interlocks import HeartbeatWatchdog, ZoneArbiter, ZoneRequestError


def test_the_press_zone_is_held_by_one_station_at_a_time() -> None:
    zones = ZoneArbiter(["press"])
    assert zones.acquire("arm", "press").granted
    refused = zones.acquire("press", "press")
    assert not refused.granted and refused.holder == "arm" and "held by arm" in refused.message
    assert zones.acquire("arm", "press").granted  # keeping it is fine
    assert zones.release("arm", "press").granted
    assert zones.acquire("press", "press").granted
    assert not zones.acquire("arm", "press").granted


def test_only_the_holder_or_an_operator_releases_a_zone() -> None:
    zones = ZoneArbiter(["press"])
    zones.acquire("press", "press")
    assert not zones.release("arm", "press").granted
    forced = zones.release("arm", "press", operator_id="op-7")
    assert forced.granted and "operator op-7" in forced.message
    assert zones.holders == {"press": ""}


def test_no_zone_is_granted_under_e_stop() -> None:
    zones = ZoneArbiter(["press"])
    assert not zones.acquire("arm", "press", estopped=True).granted
    assert zones.holders["press"] == ""


def test_unknown_zones_and_anonymous_requests_are_refused_with_a_sentence() -> None:
    zones = ZoneArbiter(["press"])
    with pytest.raises(ZoneRequestError, match="unknown zone 'oven'; the configured zones are: press"):
        zones.acquire("arm", "oven")
    with pytest.raises(ZoneRequestError, match="must name the requesting station"):
        zones.acquire(" ", "press")


def test_the_watchdog_reports_a_silent_station_once_and_only_after_it_was_heard() -> None:
    watchdog = HeartbeatWatchdog(["press", "arm"], timeout_s=1.0)
    assert watchdog.silent(100.0) == []  # never heard: not started yet, not a fault
    watchdog.heard("press", 0.0)
    watchdog.heard("cell_status", 0.0)  # not watched
    assert watchdog.silent(0.9) == []
    assert watchdog.silent(1.5) == [("press", 1.5)]
    assert watchdog.silent(2.0) == []  # reported once
    watchdog.heard("press", 2.1)
    assert watchdog.silent(3.2) == [("press", pytest.approx(1.1))]


def test_a_station_that_signs_off_is_not_reported_silent() -> None:
    watchdog = HeartbeatWatchdog(["press"], timeout_s=1.0)
    watchdog.heard("press", 0.0)
    watchdog.signed_off("press")
    assert watchdog.silent(10.0) == []
    watchdog.heard("press", 11.0)  # back again: watched again
    assert watchdog.silent(12.5) == [("press", 1.5)]

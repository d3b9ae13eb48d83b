"""Test tiers and shared fixtures.

Tiers follow the folders: test/unit and test/devices (no ROS graph; device tests talk
to simulators over real pseudo-terminals), test/ros (real ROS 2 nodes in
separate processes, each test on its own ROS_DOMAIN_ID), test/db (real database servers
and writer processes), test/build (builds the package the way users do; slow). The
hardware marker is off by default (pyproject addopts).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIER_BY_FOLDER = {"unit": "unit", "devices": "unit", "ros": "ros", "db": "db", "build": "slow"}
_domains = itertools.count((os.getpid() % 40) + 20)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(REPO / "test").parts[0]
        marker = TIER_BY_FOLDER.get(folder)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture
def ros_domain_id(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A ROS_DOMAIN_ID of this test alone, set for the test process and its children."""
    domain = 20 + (next(_domains) - 20) % 80
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    yield domain


@pytest.fixture
def repo() -> Path:
    return REPO

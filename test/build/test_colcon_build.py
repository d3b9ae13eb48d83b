"""Users with a full ROS 2 install build the package with colcon; check that way works.

Slow (it runs the rosidl build through colcon's ament_python task), so it is one test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import sys, tablet_workcell
from pathlib import Path
from rclpy.serialization import serialize_message, deserialize_message
from tablet_workcell.msg import Recipe, Component
from tablet_workcell.action import RunCampaign
assert Path(tablet_workcell.__file__).is_relative_to(Path(sys.argv[1])), tablet_workcell.__file__
recipe = Recipe(experiment_id="colcon", components=[Component(name="mcc", mass_fraction=1.0)])
assert deserialize_message(serialize_message(recipe), Recipe) == recipe
assert RunCampaign.Goal(max_experiments=3).max_experiments == 3
print("colcon install OK")
"""


def test_colcon_build_installs_a_working_package(tmp_path: Path) -> None:
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent))
    if colcon is None:
        pytest.fail("colcon is not installed in this environment; `make setup` installs it (dev extra)")
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "tablet_workcell").symlink_to(REPO)
    build = subprocess.run(
        [colcon, "build", "--base-paths", "src", "--event-handlers", "console_direct-"],
        cwd=workspace, capture_output=True, text=True, timeout=900, check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = workspace / "install" / "tablet_workcell"
    site = next(prefix.glob("lib/python3*/site-packages"))
    for executable in ("safety", "cell_status", "sim_clock"):
        assert os.access(prefix / "lib" / "tablet_workcell" / executable, os.X_OK)
    assert (prefix / "share" / "tablet_workcell" / "launch" / "workcell.launch.py").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "tablet_workcell").is_file()
    assert (prefix / "share" / "tablet_workcell" / "cmake" / "tablet_workcellConfig.cmake").is_file()

    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(site)
    environment["LD_LIBRARY_PATH"] = os.pathsep.join([str(prefix / "lib"), environment.get("LD_LIBRARY_PATH", "")])
    environment["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), sys.prefix])
    check = subprocess.run([sys.executable, "-c", CHECK, str(site)], cwd=tmp_path, env=environment,
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr
    assert "colcon install OK" in check.stdout

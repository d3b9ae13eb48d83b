from __future__ import annotations

from pathlib import Path

import pytest

from tablet_workcell.bringup import catalog
from tablet_workcell.bringup.catalog import NodeType
from tablet_workcell.bringup.description import load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.errors import ConfigError
from tablet_workcell.parameters import ParamSpec


def write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    path = config / "workcell.yaml"
    path.write_text(text)
    return path


def test_shipped_description_is_valid_in_both_modes() -> None:
    sim = load_graph(default_graph_path(), sim=True)
    real = load_graph(default_graph_path(), sim=False)
    assert "sim_clock" in [n.name for n in sim.nodes]
    assert "sim_clock" not in [n.name for n in real.nodes]
    assert all(n.parameters.get("use_sim_time") is True for n in sim.nodes if n.name != "sim_clock")
    assert all("use_sim_time" not in n.parameters for n in real.nodes)
    assert Path(sim.environment["FASTDDS_DEFAULT_PROFILES_FILE"]).is_file()


def test_overrides_are_validated_like_the_file() -> None:
    graph = load_graph(
        default_graph_path(), sim=True, parameter_overrides={"sim_clock": {"real_time_factor": 50}}
    )
    assert graph.node("sim_clock").parameters["real_time_factor"] == 50.0
    with pytest.raises(ConfigError, match="above the maximum 10000"):
        load_graph(
            default_graph_path(), sim=True, parameter_overrides={"sim_clock": {"real_time_factor": 1e6}}
        )
    with pytest.raises(ConfigError, match=r"override for node.* sim_clock not started"):
        load_graph(
            default_graph_path(), sim=False, parameter_overrides={"sim_clock": {"real_time_factor": 2}}
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: [", "not valid YAML"),
        ("nodes: []", "'nodes' must be a non-empty list"),
        ("nodez: []", "unknown key 'nodez'. Did you mean 'nodes'?"),
        ("nodes:\n  - executable: safty\n", "unknown node executable 'safty'. Did you mean 'safety'?"),
        (
            "nodes:\n  - executable: safety\n    paramters: {}\n",
            "unknown key 'paramters'. Did you mean 'parameters'?",
        ),
        ("nodes:\n  - executable: safety\n  - executable: safety\n", "a second node named '/safety'"),
        ("nodes:\n  - executable: safety\n    name: 'bad name'\n", "is not a valid ROS name"),
        ("nodes:\n  - executable: safety\n    when: sometimes\n", "when: 'sometimes' is not one of"),
        ("nodes:\n  - executable: safety\n    parameters: {status_period_s: 0}\n", "below the minimum 0.05"),
        ("ros: {fastdds_profile: nope.xml}\nnodes:\n  - executable: safety\n", "nope.xml does not exist"),
        ("ros: {discovery_range: LAN}\nnodes:\n  - executable: safety\n", "'LAN' is not one of"),
        ("ros: {namespace: cell1}\nnodes:\n  - executable: safety\n", "is not a ROS namespace"),
    ],
)
def test_bad_descriptions_name_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_graph(path, sim=True)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; pass --config"):
        load_graph(tmp_path / "absent.yaml", sim=True)


def test_missing_model_file_is_reported_before_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_node = NodeType(
        "segmenter",
        "test node needing a model",
        (ParamSpec("model_path", "str", "models/seg.onnx", "ONNX model", is_path=True),),
    )
    monkeypatch.setitem(catalog.NODE_TYPES, "segmenter", model_node)
    path = write(tmp_path, "nodes:\n  - executable: segmenter\n")
    with pytest.raises(
        ConfigError, match=r"parameter .model_path. names models/seg\.onnx, which does not exist"
    ):
        load_graph(path, sim=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "seg.onnx").write_bytes(b"onnx")
    assert load_graph(path, sim=True).node("segmenter").parameters["model_path"] == "models/seg.onnx"


def test_namespace_applies_to_all_nodes(tmp_path: Path) -> None:
    path = write(
        tmp_path, "ros: {namespace: /cell1}\nnodes:\n  - executable: safety\n  - executable: cell_status\n"
    )
    assert {n.namespace for n in load_graph(path, sim=False).nodes} == {"/cell1"}


def test_extra_environment_is_passed_to_nodes_and_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "environment: {MY_SETTING: 3}\nnodes:\n  - executable: safety\n")
    assert load_graph(path, sim=False).environment["MY_SETTING"] == "3"
    bad = write(tmp_path, "environment: {'1BAD': x}\nnodes:\n  - executable: safety\n")
    with pytest.raises(ConfigError, match="not a valid environment variable name"):
        load_graph(bad, sim=False)
    assert "GLIBC_TUNABLES" in load_graph(default_graph_path(), sim=True).environment


def test_empty_list_parameters_are_left_to_the_node_default(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes:\n  - executable: cell_status\n    parameters: {expected_stations: []}\n")
    node = load_graph(path, sim=False).node("cell_status")
    assert node.parameters["expected_stations"] == []
    assert "expected_stations" not in node.ros_parameters()


def test_one_switch_selects_simulated_or_real_ports_and_starts_simulators() -> None:
    real = load_graph(default_graph_path(), sim=False)
    sim = load_graph(
        default_graph_path(), sim=True, parameter_overrides={"sim_clock": {"real_time_factor": 20.0}}
    )
    assert real.simulators == ()
    assert {s.name for s in sim.simulators} == {
        "arm",
        "press",
        "dispensing_station",
        "disintegration_station",
    }
    assert all(s.time_scale == 20.0 for s in sim.simulators)
    assert str(real.node("press").parameters["port"]).startswith("/dev/")
    assert sim.node("press").parameters["port"] == "{ports}/press"
    assert sim.node("press").parameters["simulated"] is True
    # Nodes pacing themselves in instrument time follow the simulators' clock.
    assert sim.node("dispenser").parameters["time_scale"] == 20.0
    assert real.node("dispenser").parameters["time_scale"] == 1.0


def test_an_unknown_simulator_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "graph.yaml"
    config.write_text("nodes:\n  - executable: safety\nsimulators:\n  - name: pres\n")
    with pytest.raises(ConfigError, match=r"unknown simulator 'pres'\. Did you mean 'press'"):
        load_graph(config, sim=True)
    assert load_graph(config, sim=False).simulators == ()  # real hardware: simulators are not read

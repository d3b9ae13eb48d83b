"""Optimiser configuration from YAML: search space, objectives, constraints, strategy.

    strategy: gp_ei            # gp_ei | random | sobol | evolution | doe
    seed: 0
    initial_design: 6          # space-filling experiments before the strategy takes over
    process:                   # continuous process variables, SI units
      compaction_pressure_pa: {low: 5.0e7, high: 3.0e8, unit: Pa}
    mixture:                   # components sharing what the fixed ones leave, with bounds
      microcrystalline_cellulose: {low: 0.2, high: 0.9}
      disintegrant: {low: 0.0, high: 0.08}
    fixed: {magnesium_stearate: 0.01}
    choices:                   # a mixture slot filled by one of several materials
      disintegrant: [croscarmellose_sodium, sodium_starch_glycolate]
    objectives:
      - {name: tensile_strength_pa, goal: maximize, unit: Pa}
    constraints:
      - {name: disintegration_time_s, at_most: 300.0, unit: s}

Every problem is reported as one sentence naming the key, the value and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tablet_workcell.errors import ConfigError
from tablet_workcell.optim.gp import GaussianProcessStrategy
from tablet_workcell.optim.optimizer import Optimizer, RandomStrategy, SpaceFillingStrategy, Strategy
from tablet_workcell.optim.problem import Constraint, Objective, Problem
from tablet_workcell.optim.space import CategoricalVariable, ContinuousVariable, MixtureComponent, SearchSpace

KEYS = {
    "strategy",
    "seed",
    "initial_design",
    "process",
    "mixture",
    "fixed",
    "choices",
    "objectives",
    "constraints",
}


def _strategies() -> dict[str, type]:
    known: dict[str, type] = {
        "gp_ei": GaussianProcessStrategy,
        "random": RandomStrategy,
        "sobol": SpaceFillingStrategy,
    }
    try:  # optional strategies, present once their modules exist
        from tablet_workcell.optim.evolution import EvolutionStrategy  # noqa: PLC0415

        known["evolution"] = EvolutionStrategy
    except ImportError:
        pass
    return known


@dataclass(frozen=True)
class OptimiserConfig:
    problem: Problem
    strategy: str
    seed: int
    initial_design: int

    def optimizer(self, id_prefix: str = "exp") -> Optimizer:
        strategy: Strategy = _strategies()[self.strategy]()
        return Optimizer(self.problem, strategy, self.seed, self.initial_design, id_prefix)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, not {type(value).__name__}.")
    return value


def _number(value: object, where: str) -> float:
    # PyYAML (YAML 1.1) reads 5.0e7 as a string (it wants 5.0e+7): accept what people write.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} = {value!r} is not a number.")
    return float(value)


def parse_config(data: Mapping[str, Any], where: str = "optimiser config") -> OptimiserConfig:
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'.{hint} Allowed: {', '.join(sorted(KEYS))}.")
    process = tuple(
        ContinuousVariable(
            name,
            _number(_mapping(spec, f"{where}: process.{name}").get("low"), f"{where}: process.{name}.low"),
            _number(spec.get("high"), f"{where}: process.{name}.high"),
            str(spec.get("unit", "")),
        )
        for name, spec in _mapping(data.get("process"), f"{where}: process").items()
    )
    mixture = tuple(
        MixtureComponent(
            name,
            _number(
                _mapping(spec, f"{where}: mixture.{name}").get("low", 0.0), f"{where}: mixture.{name}.low"
            ),
            _number(spec.get("high", 1.0), f"{where}: mixture.{name}.high"),
        )
        for name, spec in _mapping(data.get("mixture"), f"{where}: mixture").items()
    )
    fixed = {
        name: _number(value, f"{where}: fixed.{name}")
        for name, value in _mapping(data.get("fixed"), f"{where}: fixed").items()
    }
    choices = tuple(
        CategoricalVariable(name, tuple(str(o) for o in options), slot=name)
        for name, options in _mapping(data.get("choices"), f"{where}: choices").items()
    )
    objectives = tuple(
        Objective(str(o["name"]), o.get("goal", "maximize"), str(o.get("unit", "")))
        for o in _list(data.get("objectives"), f"{where}: objectives")
    )
    constraints = tuple(
        Constraint(str(c["name"]), c.get("at_least"), c.get("at_most"), str(c.get("unit", "")))
        for c in _list(data.get("constraints"), f"{where}: constraints")
    )
    problem = Problem(SearchSpace(process, mixture, fixed, choices), objectives, constraints)
    strategy = str(data.get("strategy", "gp_ei"))
    known = _strategies()
    if strategy not in known:
        raise ConfigError(
            f"{where}: strategy '{strategy}' is unknown; use one of {', '.join(sorted(known))}."
        )
    seed = data.get("seed", 0)
    initial = data.get("initial_design", 6)
    if not isinstance(seed, int) or not isinstance(initial, int) or initial < 0:
        raise ConfigError(
            f"{where}: seed ({seed!r}) must be an integer and initial_design ({initial!r}) >= 0."
        )
    return OptimiserConfig(problem, strategy, seed, initial)


def _list(value: object, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) and "name" in item for item in value):
        raise ConfigError(f"{where} must be a list of mappings, each with a 'name'.")
    return value


def load_config(path: Path) -> OptimiserConfig:
    if not Path(path).is_file():
        raise ConfigError(f"optimiser config {path} does not exist.")
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error}).") from None
    return parse_config(_mapping(data, str(path)), str(path))

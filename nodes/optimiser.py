"""optimiser: suggests the next experiments and learns from their results (ask/tell services).

* ``/optimiser/suggest`` (tablet_workcell/srv/SuggestExperiments): ``count`` recipes with the
  model's predictions, uncertainty and probability of meeting the constraints.
* ``/optimiser/report`` (tablet_workcell/srv/ReportResult): the measurements of a suggested
  experiment, or its failure; both are learned from.

Stateless across restarts: at start-up the history is rebuilt from the experiment store
(tablet_workcell.optim.from_store), so a restarted optimiser continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from rclpy.node import Node

from tablet_workcell.bringup.paths import share_directory
from tablet_workcell.data.store import ExperimentStore, default_url
from tablet_workcell.errors import WorkcellError
from tablet_workcell.msg import Component, ExperimentResult, Prediction, Recipe, Suggestion
from tablet_workcell.optim.config import load_config
from tablet_workcell.optim.from_store import rebuild_from_store
from tablet_workcell.optim.optimizer import Suggestion as Proposed
from tablet_workcell.optim.parameters import OPTIMISER_PARAMETERS
from tablet_workcell.ros.parameters import declare_parameters
from tablet_workcell.ros.runner import run_node
from tablet_workcell.srv import ReportResult, SuggestExperiments


class OptimiserNode(Node):
    def __init__(self) -> None:
        super().__init__("optimiser")
        values = declare_parameters(self, OPTIMISER_PARAMETERS)
        config_path = Path(values.get_str("config_path"))
        if not config_path.is_absolute():
            config_path = share_directory() / config_path
        self._campaign = values.get_str("campaign_id")
        self._recipe = (
            values.get_float("target_tablet_mass_kg"),
            values.get_float("punch_diameter_m"),
            values.get_float("dwell_time_s"),
        )
        self._max_batch = values.get_int("max_batch")
        self._optimizer = load_config(config_path).optimizer(id_prefix=self._campaign)
        store = ExperimentStore.open(values.get_str("store_url") or default_url())
        store.ensure_campaign(self._campaign)
        told = rebuild_from_store(self._optimizer, store, self._campaign)
        store.close()
        self.create_service(SuggestExperiments, "/optimiser/suggest", self._on_suggest)
        self.create_service(ReportResult, "/optimiser/report", self._on_report)
        self.get_logger().info(
            f"campaign {self._campaign}: {told} experiments from the store, "
            f"strategy {self._optimizer.strategy.name}"
        )

    def _on_suggest(
        self, request: SuggestExperiments.Request, response: SuggestExperiments.Response
    ) -> SuggestExperiments.Response:
        if request.campaign_id and request.campaign_id != self._campaign:
            response.message = f"this optimiser serves campaign {self._campaign}, not {request.campaign_id}."
            return response
        if not 1 <= request.count <= self._max_batch:
            response.message = (
                f"count {request.count} is outside 1..{self._max_batch} suggestions per request."
            )
            return response
        try:
            response.suggestions = [self._to_message(s) for s in self._optimizer.ask(request.count)]
        except WorkcellError as error:
            response.message = str(error)
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.message = f"{len(response.suggestions)} suggestion(s)"
        return response

    def _to_message(self, proposed: Proposed) -> Suggestion:
        mass, diameter, dwell = self._recipe
        process = proposed.point.process
        recipe = Recipe(
            experiment_id=proposed.experiment_id,
            campaign_id=self._campaign,
            components=[
                Component(name=name, mass_fraction=fraction)
                for name, fraction in proposed.point.fractions.items()
            ],
            target_tablet_mass_kg=process.get("target_tablet_mass_kg", mass),
            compaction_pressure_pa=process.get("compaction_pressure_pa", 0.0),
            dwell_time_s=process.get("dwell_time_s", dwell),
            punch_diameter_m=diameter,
        )
        units = {o.name: o.unit for o in self._optimizer.problem.objectives}
        units |= {c.name: c.unit for c in self._optimizer.problem.constraints}
        predictions = [
            Prediction(name=name, mean=mean, std=std, unit=units.get(name, ""))
            for name, (mean, std) in proposed.predictions.items()
        ]
        return Suggestion(
            recipe=recipe,
            predictions=predictions,
            acquisition_value=proposed.acquisition,
            probability_feasible=proposed.probability_feasible,
            strategy=proposed.strategy,
        )

    def _on_report(
        self, request: ReportResult.Request, response: ReportResult.Response
    ) -> ReportResult.Response:
        failed = request.outcome != ExperimentResult.OUTCOME_SUCCESS
        values = {m.name: m.value for m in request.measurements}
        try:
            self._optimizer.tell(request.experiment_id, values, failed=failed)
        except WorkcellError as error:
            response.message = str(error)
            self.get_logger().warning(response.message)
            return response
        response.accepted = True
        response.message = (
            f"{request.experiment_id} {'failed: ' + request.failure_reason if failed else 'learned'}"
        )
        return response


def main() -> int:
    return run_node(OptimiserNode)


if __name__ == "__main__":
    raise SystemExit(main())

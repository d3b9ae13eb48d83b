"""Rebuild an optimiser's history from the experiment store (stateless across restarts).

The store is the optimiser's memory: every experiment of the campaign, in sequence
order, is told again from its stored recipe and measurements (failed ones as failures),
so a restarted optimiser makes the same next suggestion as one that never stopped.
"""

from __future__ import annotations

from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.optim.optimizer import Optimizer


def rebuild_from_store(optimizer: Optimizer, store: ExperimentStore, campaign_id: str) -> int:
    """Tell ``optimizer`` every stored experiment of ``campaign_id``; returns how many."""
    experiments = sorted(store.experiments(campaign_id), key=lambda e: e.sequence)
    categorical = optimizer.problem.space.categorical
    for experiment in experiments:
        values = {name: value for name, (value, _unit) in experiment.measurements.items()}
        choices = {
            c.name: next((o for o in c.choices if o in experiment.recipe), c.choices[0]) for c in categorical
        }
        optimizer.tell_point(
            experiment.id,
            experiment.process,
            experiment.recipe,
            values,
            failed=experiment.status != "completed",
            choices=choices,
        )
    return len(experiments)

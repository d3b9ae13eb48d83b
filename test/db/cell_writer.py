"""A cell writing experiments into a store, as a separate process (used by the store tests).

    python cell_writer.py STORE_URL CAMPAIGN_ID CELL_ID COUNT [MEASUREMENTS_PER_EXPERIMENT]

Prints one line per committed experiment so the parent can tell how far it got.
"""

from __future__ import annotations

import dataclasses
import sys

from tablet_workcell.data.records import MeasurementRecord
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.data.synthetic import twin_record

BLENDS = ({"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}, {"mcc": 0.5, "dcpa": 0.46, "ccs": 0.04})
SHARED_LOTS = {"microcrystalline_cellulose": "MCC-LOT-7", "croscarmellose_sodium": "CCS-LOT-2"}


def main() -> int:
    url, campaign, cell, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    extra = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    store = ExperimentStore.open(url)
    store.ensure_campaign(campaign, cell_id=cell)
    for sequence in range(1, count + 1):
        record = twin_record(
            campaign,
            sequence,
            BLENDS[sequence % 2],
            100e6 + 10e6 * (sequence % 10),
            sequence,
            lots=SHARED_LOTS,
        )
        if extra:  # long transactions, so that a kill lands inside one
            padding = tuple(MeasurementRecord(f"trace_{i}", float(i), "N") for i in range(extra))
            record = dataclasses.replace(record, measurements=record.measurements + padding)
        store.record_experiment(record)
        print(f"committed {record.experiment_id} {len(record.measurements)}", flush=True)  # noqa: T201
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

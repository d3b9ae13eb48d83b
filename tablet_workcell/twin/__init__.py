"""Physics digital twin of the cell: materials, blends, dosing, compaction, sessile-drop
disintegration and the camera's view of it.

Grounded in published relations (each module cites its sources), deterministic for a
given seed (every random draw comes from a ``numpy.random.Generator`` passed in), and
fast enough to give a whole experiment's ground truth in milliseconds. The simulators,
the analyses' training data and the optimiser benchmarks all stand on it. Nothing on
the hardware path imports it (import-linter contract in pyproject.toml).
"""

"""Alembic migrations of the experiment store (applied by ExperimentStore.open)."""

"""Experiment data platform: the store (SQLAlchemy, SQLite or PostgreSQL, Alembic
migrations), recordings (MCAP), provenance and export. No ROS imports: the recorder
node and the command line adapt it.
"""

"""Alembic environment: runs migrations on the connection the store hands over."""

from __future__ import annotations

from alembic import context

from tablet_workcell.data.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run through tablet_workcell.data.store, which passes a connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

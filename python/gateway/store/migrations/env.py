"""Alembic's environment for the key database. Run only through `gateway.store.migrate(url)`,
which passes an open connection already inside its (locked) transaction; there is no
alembic.ini and no logging configuration here (the gateway's logging stays as it is)."""

from __future__ import annotations

from alembic import context

from gateway.store.schema import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the gateway's migrations run through gateway.store.migrate(url)")
context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()

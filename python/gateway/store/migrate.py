"""The key database's schema migrations (Alembic, shipped in migrations/), run in process.

`migrate(url)` upgrades to the newest revision. It is idempotent and safe when several
processes start at once: the whole upgrade runs in one transaction that first takes a lock,
a PostgreSQL transaction-level advisory lock or SQLite's write lock (BEGIN IMMEDIATE on the
database file), so the others wait, then find the schema current and do nothing.
`prepare_database(url)` is what `gateway start` runs before any worker spawns, in a process of
its own (prepare.py), so Alembic (about 11 MB) never sits in the supervisor or its workers;
Alembic is imported by these functions, not by importing this module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from gateway.errors import DatabaseUnavailable
from gateway.store.db import (
    WRITE_LOCK,
    DatabaseUrlError,
    backend_name,
    describe,
    engine_for,
    translate_errors,
)
from gateway.store.schema import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

logger = logging.getLogger("gateway.store")
MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# pg_advisory_xact_lock key: the first 8 bytes of "gwkeysdb", a constant every gateway shares
ADVISORY_LOCK_KEY = int.from_bytes(b"gwkeysdb", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def migrate(url: str) -> str | None:
    """Upgrade the database at `url` to the newest schema; returns that revision. Raises
    `DatabaseUnavailable` (no password in it) when the database cannot be reached."""
    from alembic import command

    try:
        engine = engine_for(url)
    except DatabaseUrlError as error:
        raise DatabaseUnavailable(str(error)) from None
    config = _config()
    with translate_errors(url), engine.connect() as connection:
        connection.execution_options(**{WRITE_LOCK: True})  # SQLite: the file's write lock
        with connection.begin():
            if backend_name(url) == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            before = current_revision(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            after = current_revision(connection)
    if before != after:
        logger.info("key database %s: schema migrated from %s to %s", describe(url), before or "empty", after)
    return after


def prepare_database(url: str) -> None:
    """Migrate the key database before the workers start, and say which one it is (never with
    its password). Raises `DatabaseUnavailable` with a one-line reason."""
    revision = migrate(url)
    logger.info("key database: %s (schema %s)", describe(url), revision)

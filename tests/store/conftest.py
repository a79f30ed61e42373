"""Fixtures for the key store: a database URL for each backend (SQLite in a temp dir, and a
fresh database on a real PostgreSQL server started once per session), migrated stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import KeyStore, migrate
from gateway.store.db import dispose_engines
from tests.support.postgres import PostgresServer


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    dispose_engines()  # every test's databases are its own: close their connections


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, unmigrated database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/keys.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
def store(db_url: str) -> KeyStore:
    migrate(db_url)
    return KeyStore(db_url)

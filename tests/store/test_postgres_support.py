"""tests/support/postgres.py: PostgreSQL missing fails loudly unless a developer opts out."""

from __future__ import annotations

import pytest

from tests.support import postgres as support


def test_missing_postgres_fails_without_the_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "find_binaries", lambda: None)
    monkeypatch.delenv(support.ALLOW_MISSING, raising=False)
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is not installed"):
        support.require_postgres()
    monkeypatch.setenv(support.ALLOW_MISSING, "1")
    with pytest.raises(pytest.skip.Exception):
        support.require_postgres()


def test_server_answers_on_its_port(postgres: support.PostgresServer) -> None:
    import psycopg

    url = postgres.create_database()
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("gateway_test",)
        assert connection.info.host == "127.0.0.1" and connection.info.port == postgres.port

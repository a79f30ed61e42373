"""A database URL's password never reaches a log line, an exception or a repr."""

from __future__ import annotations

import logging

import pytest

from gateway.store import DatabaseUnavailable, KeyStore, describe, migrate, prepare_database
from gateway.store.db import scrub
from tests.conftest import free_port
from tests.support.postgres import PostgresServer

PASSWORD = "Sup3r-Secret_pw"


def _chain(error: BaseException) -> str:
    """Every message of the exception and the ones it was raised from or during."""
    texts = []
    seen: BaseException | None = error
    while seen is not None and len(texts) < 10:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "alembic", "psycopg", "gateway"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_working_url_with_a_password(postgres: PostgresServer, all_logs: pytest.LogCaptureFixture) -> None:
    # trust authentication ignores the password: the URL works and still carries it
    database = postgres.create_database()
    url = postgres.url(database.rsplit("/", 1)[1], password=PASSWORD)
    prepare_database(url)
    store = KeyStore(url)
    record, _ = store.create("a")
    store.revoke(record.id)
    store.changes_since(0)
    assert PASSWORD not in repr(store) and PASSWORD not in store.description
    assert PASSWORD not in describe(url) and "postgresql gateway_test@127.0.0.1" in describe(url)
    assert "key database: postgresql" in all_logs.text
    assert PASSWORD not in all_logs.text


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://gateway_test:{PASSWORD}@127.0.0.1:{{port}}/keys",  # nothing listens there
        f"postgres://gateway_test:{PASSWORD}@127.0.0.1:{{port}}/keys?sslmode=disable",
        f"postgresql://gateway_test:{PASSWORD}@127.0.0.1:notaport/keys",  # cannot be parsed
        f"postgresql://gateway_test:{PASSWORD}@[::1/keys",
        f"mysql://gateway_test:{PASSWORD}@127.0.0.1/keys",  # not a supported backend
    ],
)
def test_failing_urls_never_show_the_password(url: str, all_logs: pytest.LogCaptureFixture) -> None:
    url = url.replace("{port}", str(free_port()))
    for action in (lambda: migrate(url), lambda: KeyStore(url).create("x"), lambda: KeyStore(url).get("x")):
        with pytest.raises(DatabaseUnavailable) as caught:
            action()
        assert PASSWORD not in _chain(caught.value)
        assert PASSWORD not in caught.value.body().decode()
        assert caught.value.status == 503
    assert PASSWORD not in repr(KeyStore(url)) and PASSWORD not in describe(url)
    assert PASSWORD not in all_logs.text


def test_unknown_database_on_a_real_server(
    postgres: PostgresServer, all_logs: pytest.LogCaptureFixture
) -> None:
    url = postgres.url("no_such_database", password=PASSWORD)
    with pytest.raises(DatabaseUnavailable, match="no_such_database") as caught:
        prepare_database(url)
    assert PASSWORD not in _chain(caught.value)
    assert PASSWORD not in all_logs.text


def test_scrub_covers_encoded_forms() -> None:
    url = "postgresql://u:p%40ss%2Fword-long@h/db"
    assert scrub("failed for p@ss/word-long and p%40ss%2Fword-long", url) == "failed for *** and ***"

"""KeyStore against SQLite and a real PostgreSQL: CRUD, validation, revision ordering,
changes_since across stores and processes, migrations (repeated and concurrent), and the
database never holding a secret."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.errors import BadRequest, InvalidParameter, NotFound
from gateway.store import KeyStore, hash_secret, migrate
from gateway.store.db import backend_name, engine_for, parse_url
from gateway.store.keys import MAX_METADATA_BYTES, record_json
from gateway.store.migrate import head_revision
from gateway.store.schema import VERSION_TABLE

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (its own engine: another process on the same database)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


# -- create / get / list / update / revoke ----------------------------------------------------
def test_create_and_get(store: KeyStore) -> None:
    expires = datetime.now(UTC) + timedelta(days=3)
    record, secret = store.create(
        "alice",
        team="red",
        endpoints=["chat*", "embeddings"],
        expires_at=expires,
        limit={"calls": 10, "renewal_period": "minute", "key": "consumer"},
        metadata={"owner": "alice@example.com", "tags": ["a", 1, None]},
    )
    assert re.fullmatch(r"gw-[A-Za-z0-9_-]{43}", secret)  # token_urlsafe(32): 256 bits
    assert re.fullmatch(r"key_[0-9a-f]{20}", record.id)
    assert record.key_hash == hash_secret(secret) and len(record.key_hash) == 64
    assert record.prefix == secret[:12]
    assert record.name == "alice" and record.team == "red"
    assert record.endpoints == ("chat*", "embeddings")
    assert record.limit == {"calls": 10, "renewal_period": "minute", "key": "consumer"}
    assert record.metadata == {"owner": "alice@example.com", "tags": ["a", 1, None]}
    assert record.revoked_at is None and record.revision >= 1
    assert record.expires_at is not None and abs((record.expires_at - expires).total_seconds()) < 1e-3
    for stamp in (record.created_at, record.updated_at, record.expires_at):
        assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
    assert store.get(record.id) == record
    assert store.get("key_00000000000000000000") is None
    assert record.allows("chat") and record.allows("chat-large") and record.allows("embeddings")
    assert not record.allows("completions")
    assert record.status() == "active" and not record.expired()


def test_create_defaults(store: KeyStore) -> None:
    record, _ = store.create("  bob  ")
    assert record.name == "bob"
    assert record.team is None and record.endpoints == () and record.expires_at is None
    assert record.limit is None and record.metadata == {}
    assert record.allows("anything")
    assert store.get(record.id) == record


def test_list_pages_in_creation_order(store: KeyStore) -> None:
    created = [store.create(f"k{i}", team="red" if i % 2 else "blue")[0] for i in range(7)]
    store.revoke(created[3].id)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.list(page_size=2, page_token=token)
        pages += 1
        assert len(page.keys) <= 2
        seen += [record.id for record in page.keys]
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3
    assert seen == [record.id for i, record in enumerate(created) if i != 3]
    everything = store.list(include_revoked=True, page_size=1000)
    assert [record.id for record in everything.keys] == [record.id for record in created]
    assert everything.next_page_token is None
    red = store.list(team="red", include_revoked=True)
    assert [record.id for record in red.keys] == [record.id for record in created[1::2]]
    with pytest.raises(BadRequest, match="Invalid page_token"):
        store.list(page_token="not-a-token")
    for size in (0, 1001):
        with pytest.raises(BadRequest, match="page_size"):
            store.list(page_size=size)


def test_update_changes_and_clears(store: KeyStore) -> None:
    record, secret = store.create("a", team="t", endpoints=["x"], limit={"calls": 1, "renewal_period": "day"})
    expires = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
    updated = store.update(
        record.id, name="b", endpoints=["y*"], expires_at=expires, metadata={"k": "v"}, limit=None
    )
    assert (updated.name, updated.team, updated.endpoints) == ("b", "t", ("y*",))
    assert updated.expires_at == expires and updated.metadata == {"k": "v"} and updated.limit is None
    assert updated.revision > record.revision and updated.updated_at >= record.updated_at
    assert updated.created_at == record.created_at and updated.key_hash == hash_secret(secret)
    cleared = store.update(record.id, team=None, endpoints=None, expires_at=None, metadata=None)
    assert (cleared.team, cleared.endpoints, cleared.expires_at, cleared.metadata) == (None, (), None, {})
    assert store.get(record.id) == cleared
    # nothing to change: no write, no new revision
    assert store.update(record.id) == cleared
    assert store.current_revision() == cleared.revision
    with pytest.raises(InvalidParameter, match="unknown field"):
        store.update(record.id, key_hash="0" * 64)
    with pytest.raises(InvalidParameter, match="name"):
        store.update(record.id, name=None)
    with pytest.raises(NotFound):
        store.update("key_00000000000000000000", name="x")
    assert store.current_revision() == cleared.revision  # failed writes leave no revision behind


def test_revoke_is_idempotent(store: KeyStore) -> None:
    record, _ = store.create("a")
    revoked = store.revoke(record.id)
    assert revoked.revoked_at is not None and revoked.revision > record.revision
    assert revoked.status() == "revoked"
    again = store.revoke(record.id)
    assert again == revoked
    assert store.current_revision() == revoked.revision
    with pytest.raises(NotFound):
        store.revoke("key_00000000000000000000")
    # a revoked key may still be annotated, and stays revoked
    annotated = store.update(record.id, metadata={"reason": "leaked"})
    assert annotated.revoked_at == revoked.revoked_at


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name: must be a string of 1 to 200"),
    ({"name": "x" * 201}, "name: must be a string of 1 to 200"),
    ({"name": 5}, "name"),
    ({"team": ""}, "team"),
    ({"endpoints": "chat"}, "endpoints: must be a list"),
    ({"endpoints": ["chat", ""]}, "endpoints: each pattern must be a non-empty string"),
    ({"endpoints": [3]}, "endpoints: each pattern"),
    ({"limit": {"calls": 0, "renewal_period": "minute"}}, "limit: Failed to parse the rate limit"),
    ({"limit": {"calls": 5, "renewal_period": "fortnight"}}, "limit: Failed to parse"),
    ({"limit": {"calls": 5, "renewal_period": "minute", "token": 9}}, "limit: unknown key"),
    ({"limit": {"calls": 5, "renewal_period": "minute", "tokens": -1}}, "limit.tokens"),
    ({"limit": [1]}, "limit: must be an object"),
    ({"metadata": ["x"]}, "metadata: must be a JSON object"),
    ({"metadata": {"x": "y" * MAX_METADATA_BYTES}}, "metadata: at most 16 KiB"),
    ({"metadata": {"x": float("nan")}}, "metadata: must hold JSON values only"),
    ({"metadata": {1: "x"}}, "metadata: keys must be strings"),
    ({"expires_at": datetime(2099, 1, 1)}, "expires_at: needs a time zone"),
    ({"expires_at": "tomorrow"}, "expires_at: 'tomorrow' is not an RFC 3339"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FIELDS)
def test_invalid_fields_are_refused(store: KeyStore, fields: dict[str, Any], message: str) -> None:
    arguments = {"name": "ok", **fields}
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        store.create(**arguments)
    assert store.list(include_revoked=True).keys == []
    assert store.current_revision() == 0


def test_metadata_limit_is_on_the_encoded_size(store: KeyStore) -> None:
    # {"x":"..."} is 8 bytes of JSON around the value
    record, _ = store.create("a", metadata={"x": "y" * (MAX_METADATA_BYTES - 8)})
    assert len(record.metadata["x"]) == MAX_METADATA_BYTES - 8
    with pytest.raises(InvalidParameter):
        store.create("a", metadata={"x": "y" * (MAX_METADATA_BYTES - 7)})


# -- revisions and changes_since -------------------------------------------------------------
def test_every_write_bumps_the_revision_in_order(store: KeyStore) -> None:
    assert store.changes_since(0) == (0, [])
    first, _ = store.create("a")
    second, _ = store.create("b")
    updated = store.update(first.id, name="a2")
    revoked = store.revoke(second.id)
    assert [first.revision, second.revision, updated.revision, revoked.revision] == [1, 2, 3, 4]
    assert store.current_revision() == 4
    revision, records = store.changes_since(0)
    assert revision == 4
    assert [(r.id, r.revision) for r in records] == [(first.id, 3), (second.id, 4)]  # latest state only
    assert records[1].revoked_at is not None  # revoked rows come too, so caches drop them
    assert store.changes_since(3) == (4, [revoked])
    assert store.changes_since(4) == (4, [])


def test_concurrent_writers_get_distinct_revisions(store: KeyStore) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(8):
                record, _ = store.create(f"w{worker}-{i}")
                if i % 3 == 0:
                    store.revoke(record.id)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    revision, records = store.changes_since(0)
    assert revision == store.current_revision() == 4 * (8 + 3)
    revisions = [record.revision for record in records]
    assert revisions == sorted(set(revisions)) and len(records) == 32


WRITER = """
import sys
from gateway.store import KeyStore
store = KeyStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    record, _ = store.create(f"{sys.argv[3]}-{i}")
    if i % 4 == 0:
        store.update(record.id, metadata={"n": i})
print("done")
"""


def test_a_polling_reader_misses_no_write_from_concurrent_processes(store: KeyStore, db_url: str) -> None:
    """Three processes write while this one polls changes_since from its last revision: every
    key written is seen, in its final state, and revisions only grow."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, "25", f"p{n}"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    seen: dict[str, int] = {}
    cursor = 0
    while any(writer.poll() is None for writer in writers):
        revision, records = store.changes_since(cursor)
        assert revision >= cursor
        for record in records:
            assert record.revision > cursor
            seen[record.id] = record.revision
        cursor = revision
        time.sleep(0.005)
    for writer in writers:
        out, err = writer.communicate()
        assert writer.returncode == 0, err
    revision, records = store.changes_since(cursor)
    for record in records:
        seen[record.id] = record.revision
    final = {record.id: record.revision for record in store.list(page_size=1000).keys}
    assert len(final) == 75
    assert seen == final


def test_two_stores_see_each_others_writes(store: KeyStore, db_url: str) -> None:
    other = KeyStore(db_url)
    mine, _ = store.create("mine")
    assert other.get(mine.id) == mine
    theirs, _ = other.create("theirs")
    revision, records = store.changes_since(mine.revision)
    assert revision == theirs.revision and records == [theirs]
    # and a store in another process, with its own engine and connections
    result = run_python(
        """
        import sys
        from gateway.store import KeyStore
        store = KeyStore(sys.argv[1])
        store.revoke(sys.argv[2])
        record, _ = store.create("from-another-process")
        print(record.id)
        """,
        db_url,
        mine.id,
    )
    assert result.returncode == 0, result.stderr
    new_id = result.stdout.strip()
    revision, records = store.changes_since(theirs.revision)
    assert [(record.id, record.revoked_at is not None) for record in records] == [
        (mine.id, True),
        (new_id, False),
    ]
    assert revision == store.current_revision()


# -- migrations -------------------------------------------------------------------------------
def _tables(url: str) -> set[str]:
    return set(sa.inspect(engine_for(url)).get_table_names())


def test_migrations_are_idempotent(db_url: str) -> None:
    assert head_revision() == "0004"
    assert migrate(db_url) == "0004"
    assert _tables(db_url) == {
        "consumer_keys",
        "gateway_revision",
        "usage_records",
        "team_budgets",
        "response_states",
        VERSION_TABLE,
    }
    store = KeyStore(db_url)
    record, _ = store.create("survives")
    assert migrate(db_url) == "0004"
    assert migrate(db_url) == "0004"
    assert store.get(record.id) == record
    with engine_for(db_url).connect() as connection:
        assert connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [("0004",)]
        assert connection.execute(sa.text("SELECT id, revision FROM gateway_revision")).all() == [(1, 1)]
    indexes = {index["name"]: index for index in sa.inspect(engine_for(db_url)).get_indexes("consumer_keys")}
    assert indexes["ix_consumer_keys_key_hash"]["unique"]
    assert indexes["ix_consumer_keys_revision"]["column_names"] == ["revision"]


MIGRATOR = """
import sys, time
from gateway.store import migrate
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
print(migrate(sys.argv[1]))
"""


def test_concurrent_migrations(db_url: str) -> None:
    """Several processes migrating one empty database at the same moment: all succeed, and the
    schema is created once."""
    start = time.time() + 2.0  # every interpreter has imported SQLAlchemy and Alembic by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, db_url, repr(start)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert out.strip() == "0004"
    with engine_for(db_url).connect() as connection:
        assert connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [("0004",)]
        assert connection.execute(sa.text("SELECT id, revision FROM gateway_revision")).all() == [(1, 0)]
    assert KeyStore(db_url).create("works")[0].revision == 1


def test_unmigrated_database_says_so(db_url: str) -> None:
    from gateway.store import DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable, match="not migrated"):
        KeyStore(db_url).create("x")


# -- no secret in the database ---------------------------------------------------------------
def test_the_database_never_holds_a_secret(store: KeyStore, db_url: str) -> None:
    secrets_made = []
    for i in range(5):
        record, secret = store.create(f"k{i}", team="t", endpoints=["*"], metadata={"i": i})
        secrets_made.append(secret)
        if i % 2:
            store.update(record.id, name=f"renamed{i}")
        if i == 3:
            store.revoke(record.id)
    engine = engine_for(db_url)
    dump = []
    with engine.connect() as connection:
        for table in sa.inspect(engine).get_table_names():
            for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')):
                dump.extend(str(value) for value in row)
    text = "\n".join(dump)
    assert len(dump) > 5 * 13
    for secret in secrets_made:
        body = secret[len("gw-") :]
        assert secret not in text
        assert body not in text
        assert body[9:] not in text  # beyond the stored 12-character prefix, nothing of it
        assert hash_secret(secret) in text  # what is stored instead
    if backend_name(db_url) == "sqlite":  # the raw file (and its WAL) too
        path = Path(str(parse_url(db_url).database))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        for secret in secrets_made:
            assert secret[3:].encode() not in raw


def test_records_render_without_secret_or_hash(store: KeyStore) -> None:
    record, secret = store.create("a", expires_at=datetime(2099, 1, 1, tzinfo=UTC))
    shown = record_json(record)
    assert "key_hash" not in shown and "key" not in shown
    assert secret not in json.dumps(shown) and record.key_hash not in json.dumps(shown)
    assert shown["prefix"] == secret[:12]
    assert shown["expires_at"] == "2099-01-01T00:00:00Z"
    assert shown["created_at"].endswith("Z") and shown["status"] == "active"


# -- SQLite specifics -------------------------------------------------------------------------
def test_sqlite_file_mode_and_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/dir/keys.db"
    migrate(url)
    directory = tmp_path / "new" / "dir"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "keys.db").stat().st_mode) == 0o600
    with engine_for(url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    assert engine_for(url) is engine_for(url)  # one engine per process and URL


def test_postgres_urls_use_psycopg3() -> None:
    assert parse_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgresql://u:p@h:5432/db").drivername == "postgresql+psycopg"
    assert parse_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("sqlite:////tmp/x.db").drivername == "sqlite"

"""KeyCache: O(1) lookups without the database, revocation propagation from another store
within 1 s, ordering of out-of-date records, and polling that survives database errors."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway.store import DatabaseUnavailable, KeyCache, KeyRecord, KeyStore, hash_secret


def test_lookup_and_refresh(store: KeyStore) -> None:
    async def scenario() -> None:
        cache = KeyCache(store)
        live, secret = store.create("live")
        gone, gone_secret = store.create("gone")
        store.revoke(gone.id)
        expired, expired_secret = store.create("old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
        assert cache.lookup(secret) is None and not cache.loaded
        assert await cache.refresh() == 3
        assert cache.loaded and cache.revision == store.current_revision()
        assert cache.lookup(secret) == store.get(live.id)
        assert cache.lookup_hash(hash_secret(secret)) == store.get(live.id)
        assert cache.lookup(gone_secret) is None  # revoked keys are not kept
        found = cache.lookup(expired_secret)  # expiry is the caller's to check
        assert found is not None and found.expired() and found.status() == "expired"
        assert cache.lookup(secret + "x") is None
        assert cache.lookup("sk-not-a-gateway-key") is None
        assert len(cache) == 2
        # nothing new: nothing changes
        assert await cache.refresh() == 0

    asyncio.run(scenario())


def test_lookup_never_touches_the_database(store: KeyStore) -> None:
    async def scenario() -> None:
        cache = KeyCache(store)
        _, secret = store.create("a")
        await cache.refresh()

        def boom(revision: int) -> tuple[int, list[KeyRecord]]:
            raise AssertionError("the database was used")

        store.changes_since = boom  # type: ignore[method-assign]
        started = time.perf_counter()
        for _ in range(10_000):
            assert cache.lookup(secret) is not None
        assert time.perf_counter() - started < 1.0

    asyncio.run(scenario())


def test_revocation_reaches_a_running_cache_within_a_second(store: KeyStore, db_url: str) -> None:
    """A second KeyStore (an admin elsewhere) revokes; the cache polling through the first drops
    the key well within 1 s."""

    async def scenario() -> float:
        cache = KeyCache()
        record, secret = store.create("doomed")
        task = asyncio.create_task(cache.run(store))
        try:
            deadline = time.monotonic() + 5
            while cache.lookup(secret) is None:
                assert time.monotonic() < deadline, "the running cache never loaded the key"
                await asyncio.sleep(0.01)
            other = KeyStore(db_url)
            await asyncio.to_thread(other.revoke, record.id)
            revoked_at = time.monotonic()
            while cache.lookup(secret) is not None:
                assert time.monotonic() - revoked_at < 1.0, "revocation took longer than 1 s"
                await asyncio.sleep(0.01)
            return time.monotonic() - revoked_at
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    elapsed = asyncio.run(scenario())
    assert elapsed < 1.0


def test_new_keys_reach_a_running_cache(store: KeyStore) -> None:
    async def scenario() -> None:
        cache = KeyCache(store)
        task = asyncio.create_task(cache.run(interval=0.05))
        try:
            _, secret = await asyncio.to_thread(store.create, "late")
            deadline = time.monotonic() + 2
            while cache.lookup(secret) is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        finally:
            task.cancel()

    asyncio.run(scenario())


def _record(revision: int, revoked: bool = False, key_hash: str = "h" * 64) -> KeyRecord:
    now = datetime.now(UTC)
    return KeyRecord(
        id="key_" + "0" * 20,
        name="n",
        team=None,
        endpoints=(),
        expires_at=None,
        limit=None,
        metadata={},
        key_hash=key_hash,
        prefix="gw-xxxxxxxxx",
        created_at=now,
        updated_at=now,
        revoked_at=now if revoked else None,
        revision=revision,
    )


def test_an_older_record_never_replaces_a_newer_one() -> None:
    cache = KeyCache()
    cache.put(_record(5, revoked=True))  # this worker revoked it (the admin API)
    cache.apply(3, [_record(3)])  # a poll that started before the revoke answers late
    assert cache.lookup_hash("h" * 64) is None
    assert cache.revision == 3  # put() never moves the poll's cursor; apply() does
    cache.apply(2, [])
    assert cache.revision == 3  # and never backwards
    cache.put(_record(7))
    assert cache.lookup_hash("h" * 64) is not None
    cache.put(_record(8, key_hash="g" * 64))  # a record under a new hash replaces the old one
    assert cache.lookup_hash("h" * 64) is None and cache.lookup_hash("g" * 64) is not None


class FlakyStore:
    """changes_since fails while `down`; otherwise answers one key once."""

    def __init__(self, record: KeyRecord) -> None:
        self.record = record
        self.down = False
        self.calls = 0

    def changes_since(self, revision: int) -> tuple[int, list[KeyRecord]]:
        self.calls += 1
        if self.down:
            raise DatabaseUnavailable("key database (postgresql db:5432/keys) error: connection refused")
        if revision < self.record.revision:
            return self.record.revision, [self.record]
        return revision, []


def test_polling_survives_database_errors(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        flaky = FlakyStore(_record(1))
        cache = KeyCache()
        task = asyncio.create_task(cache.run(flaky, interval=0.01))  # type: ignore[arg-type]
        try:
            while not cache.loaded:
                await asyncio.sleep(0.01)
            flaky.down = True
            calls = flaky.calls
            while flaky.calls < calls + 20:
                await asyncio.sleep(0.01)
            assert not task.done()
            assert cache.lookup_hash("h" * 64) is not None  # the cache keeps what it has
            flaky.down = False
            calls = flaky.calls
            while flaky.calls < calls + 3:
                await asyncio.sleep(0.01)
        finally:
            task.cancel()

    with caplog.at_level(logging.INFO, logger="gateway.store"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # at most one every 10 s
    assert "connection refused" in warnings[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_refresh_needs_a_store() -> None:
    with pytest.raises(RuntimeError, match="needs a KeyStore"):
        asyncio.run(KeyCache().refresh())

"""The spend ledger: exact totals across worker processes (the host's shared table, whose file
`gateway start` creates and removes) and across hosts (one Redis), and what happens while
Redis is down (totals refuse at once, additions are queued and applied once it is back)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.budgets import ledger
from gateway.budgets.ledger import (
    LedgerUnavailable,
    RedisLedger,
    budget_table_file,
    host_ledger,
    redis_ledger,
)
from gateway.settings import reload_settings
from tests.conftest import GatewayProcess
from tests.limits.configs import config, endpoint
from tests.limits.conftest import RedisServer

DAY = 86_400


def later(seconds: int = DAY) -> int:
    return int(time.time()) + seconds


# -- this host ---------------------------------------------------------------------------------
def _spend(adds: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> int:
        book = host_ledger()  # maps the file named in GATEWAY_BUDGETS_TABLE
        expires = later()
        for i in range(adds):
            await book.add([("global|day:2026-12-01", expires), (f"key:k_{i % 5}|day", expires)], 7)
        return (await book.totals(["global|day:2026-12-01"]))[0]

    results.put(asyncio.run(run()))


def test_worker_processes_share_one_exact_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LIMITS_DIR", str(tmp_path))
    reload_settings()
    with budget_table_file() as path:
        assert os.environ[ledger.TABLE_ENV] == path
        context = multiprocessing.get_context("spawn")  # fresh interpreters, as Granian's workers
        results = context.Queue()
        workers = [context.Process(target=_spend, args=(1000, results)) for _ in range(4)]
        for worker in workers:
            worker.start()
        seen = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(30)
        book = host_ledger()
        total = asyncio.run(book.totals(["global|day:2026-12-01"]))
        per_key = asyncio.run(book.totals([f"key:k_{i}|day" for i in range(5)]))
    assert total == [4 * 1000 * 7]
    assert max(seen) == 4 * 1000 * 7
    assert sum(per_key) == 4 * 1000 * 7
    assert not Path(path).exists()
    assert ledger.TABLE_ENV not in os.environ


def test_without_a_supervisor_the_ledger_is_private_to_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ledger.TABLE_ENV, raising=False)
    book = host_ledger()
    key = f"private|{os.getpid()}|{time.monotonic_ns()}"
    assert asyncio.run(book.totals([key])) == [0]
    assert asyncio.run(book.add([(key, later())], 5)) == [5]
    assert asyncio.run(book.add([(key, later())], -2)) == [3]  # a refund
    assert asyncio.run(book.add([(key, int(time.time()) - 1)], 5)) == [0]  # window over
    assert asyncio.run(host_ledger().totals([key])) == [3]


def test_gateway_start_creates_the_table_and_removes_it_and_stale_ones(
    tmp_path: Path, start_gateway: Callable[..., GatewayProcess]
) -> None:
    stale = tmp_path / f"{ledger.FILE_PREFIX}999999999-abc"  # its supervisor was killed long ago
    stale.write_bytes(b"")
    gateway = start_gateway(
        config(endpoint("chat")),
        workers=2,
        env={"GATEWAY_LIMITS_DIR": str(tmp_path), "GATEWAY_DRAIN_SECONDS": "1"},
    )
    tables = list(tmp_path.glob(f"{ledger.FILE_PREFIX}{gateway.proc.pid}-*"))
    assert len(tables) == 1
    assert oct(tables[0].stat().st_mode & 0o777) == "0o600"
    assert not stale.exists()
    assert gateway.stop() == 0
    assert not tables[0].exists()


# -- across hosts: Redis -----------------------------------------------------------------------
def test_hosts_sharing_redis_add_exactly(redis_server: RedisServer) -> None:
    async def run() -> tuple[list[int], list[int]]:
        hosts = [RedisLedger(redis_server.url, "closed") for _ in range(2)]
        expires = later()

        async def spend(book: RedisLedger, n: int) -> None:
            await book.add([("team:t1|month", expires), (f"key:k_{n % 3}|month", expires)], 1_500)

        await asyncio.gather(*(spend(hosts[n % 2], n) for n in range(300)))
        totals = await hosts[0].totals(["team:t1|month", "key:k_0|month", "absent"])
        per_key = await hosts[1].totals([f"key:k_{i}|month" for i in range(3)])
        for book in hosts:
            await book.close()
        return totals, per_key

    totals, per_key = asyncio.run(run())
    assert totals == [300 * 1_500, 100 * 1_500, 0]
    assert per_key == [100 * 1_500] * 3


def test_redis_counters_expire_with_their_window(redis_server: RedisServer) -> None:
    async def run() -> tuple[list[int], list[int], list[int]]:
        book = RedisLedger(redis_server.url, "open")
        now = int(time.time())
        added = await book.add([("short", now + 2), ("long", now + DAY), ("over", now - 1)], 9)
        await asyncio.sleep(now + 3.2 - time.time())
        after = await book.totals(["short", "long", "over"])
        # a later window's expiry extends a counter; an earlier one never shortens it
        await book.add([("long", now + 10)], 1)
        ttl = await book.client.ttl(ledger.PREFIX + "long")
        await book.close()
        return added, after, [ttl]

    added, after, ttl = asyncio.run(run())
    assert added == [9, 9, 0]
    assert after == [0, 9, 0]
    assert ttl[0] > DAY - 60


def test_a_retried_addition_counts_once(redis_server: RedisServer) -> None:
    async def run() -> list[int]:
        book = RedisLedger(redis_server.url, "closed")
        addition = ledger.Addition("op-1", (("k", later()),), 4)
        await book._apply(addition)
        await book._apply(addition)  # as a retry after an answer lost on the way back would
        totals = await book.totals(["k"])
        await book.close()
        return totals

    assert asyncio.run(run()) == [4]


def test_redis_down_refuses_totals_at_once_and_loses_no_spend(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> None:
        book = RedisLedger(redis_server.url, "closed")
        expires = later()
        assert await book.add([("k", expires)], 10) == [10]
        redis_server.kill()
        failures = 0
        for _ in range(20):
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable, match="unreachable"):
                await book.totals(["k"])
            with pytest.raises(LedgerUnavailable):
                await book.add([("k", expires)], 5)  # queued, not lost
            failures += 1
            assert time.monotonic() - started < 1.5  # a refused connection, then the back-off
        assert len(book.queue) == failures
        redis_server.start()  # same port: the queued spend is applied in the background
        deadline = time.monotonic() + 15
        while book.queue and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not book.queue
        # the restarted server (no persistence) lost the first 10; the queue lost nothing
        assert await book.totals(["k"]) == [5 * failures]
        assert await book.add([("k", expires)], 1) == [1 + 5 * failures]
        await book.close()

    with caplog.at_level(logging.WARNING, logger="gateway.budgets"):
        asyncio.run(run())
    outages = [r for r in caplog.records if "is unreachable" in r.getMessage()]
    assert len(outages) == 1, "one line per outage"
    assert "refuse requests (failure mode closed)" in outages[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_additions_during_an_outage_never_wait_on_redis(redis_server: RedisServer) -> None:
    async def run() -> tuple[float, list[int]]:
        book = RedisLedger(redis_server.url, "open")
        redis_server.kill()
        with pytest.raises(LedgerUnavailable):
            await book.add([("k", later())], 1)
        started = time.monotonic()
        for _ in range(1000):
            with pytest.raises(LedgerUnavailable):
                await book.add([("k", later())], 1)
        elapsed = time.monotonic() - started
        pending = [book.pending.get("k", 0)]
        await book.close()
        return elapsed, pending

    elapsed, pending = asyncio.run(run())
    assert elapsed < 0.5
    assert pending == [1001]


def test_redis_ledger_is_one_client_per_url_and_mode_and_hides_the_password() -> None:
    a = redis_ledger("redis://:s3cret@127.0.0.1:1/0", "open")
    assert redis_ledger("redis://:s3cret@127.0.0.1:1/0", "open") is a
    assert redis_ledger("redis://:s3cret@127.0.0.1:1/0", "closed") is not a

    async def run() -> str:
        with pytest.raises(LedgerUnavailable) as refused:
            await a.totals(["k"])
        return str(refused.value)

    message = asyncio.run(run())
    assert "s3cret" not in message
    assert "redis://127.0.0.1:1/0" in message

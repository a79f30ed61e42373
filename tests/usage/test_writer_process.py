"""Usage records under `gateway start` go from every worker to one writer process per host
(usage/spool.py, usage/writer_process.py): every record reaches the database, from every worker,
across a writer crash and at shutdown; a worker never blocks or grows without bound when the
writer is away; a hostile frame on the socket only loses its own connection."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest

from gateway.server.process import private_base_directory
from gateway.usage import UsageRecord
from gateway.usage.spool import FRAME, UsageSpool
from tests.conftest import GatewayProcess

WRITER = "gateway.usage.writer_process"


def config(base: str, database: Path) -> str:
    return f"""
database_url: sqlite:///{database}
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-test-secret-key, openai_api_base: {base}}}
"""


def chat(url: str) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text


def chats(url: str, count: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: chat(url), range(count)))


def rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM usage_records").fetchone()[0])


def wait_for_rows(database: Path, expected: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (found := rows(database)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found == expected


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:  # a thread or process that has just ended
            continue
        for child in children:
            found += [int(child), *descendants(int(child))]
    return found


def writer_pids(gateway: GatewayProcess) -> list[int]:
    pids = []
    for pid in descendants(gateway.proc.pid):
        try:
            if WRITER in Path(f"/proc/{pid}/cmdline").read_text():
                pids.append(pid)
        except OSError:
            continue
    return pids


def test_every_workers_records_reach_the_database_through_one_writer_process(
    start_gateway, upstream, tmp_path
):
    database = tmp_path / "usage.db"
    gateway = start_gateway(config(upstream.base, database), workers=2)
    assert len(writer_pids(gateway)) == 1
    chats(gateway.url, 60)
    wait_for_rows(database, 60, timeout=5)  # within about a second of the last request
    # the database URL is handed over on stdin: never on a command line
    (pid,) = writer_pids(gateway)
    assert str(database) not in Path(f"/proc/{pid}/cmdline").read_text()


def test_a_killed_writer_process_is_restarted_and_later_records_are_written(
    start_gateway, upstream, tmp_path
):
    database = tmp_path / "usage.db"
    gateway = start_gateway(config(upstream.base, database), workers=2)
    chats(gateway.url, 10)
    wait_for_rows(database, 10)
    (first,) = writer_pids(gateway)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (restarted := writer_pids(gateway)) in ([], [first]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(restarted) == 1 and restarted != [first]
    assert "the usage writer process exited (-9), losing the records it held; restarting it" in gateway.log()
    chats(gateway.url, 10)  # sent while the workers reconnect: kept, then written
    wait_for_rows(database, 20)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_whole_process_group_loses_no_record(start_gateway, upstream, tmp_path, signum):
    """Ctrl-C in a terminal (or `kill -- -PGID`) reaches the writer process too, while the
    workers still have records to send: only the supervisor stops the writer, after them."""
    database = tmp_path / "usage.db"
    gateway = start_gateway(config(upstream.base, database), workers=2)
    chats(gateway.url, 40)
    os.killpg(gateway.proc.pid, signum)
    assert gateway.proc.wait(30) == 0
    assert rows(database) == 40


def test_a_writer_process_stopped_alone_is_restarted(start_gateway, upstream, tmp_path):
    database = tmp_path / "usage.db"
    gateway = start_gateway(config(upstream.base, database), workers=1)
    (first,) = writer_pids(gateway)
    os.kill(first, signal.SIGTERM)  # ignored: only the supervisor stops it
    os.kill(first, signal.SIGHUP)
    time.sleep(0.5)
    assert writer_pids(gateway) == [first]
    os.kill(first, signal.SIGKILL)
    chats(gateway.url, 10)
    wait_for_rows(database, 10)
    assert len(writer_pids(gateway)) == 1 and writer_pids(gateway) != [first]


def test_records_held_at_shutdown_are_written_before_the_gateway_exits(start_gateway, upstream, tmp_path):
    database = tmp_path / "usage.db"
    gateway = start_gateway(config(upstream.base, database), workers=2)
    chats(gateway.url, 30)
    assert gateway.stop() == 0  # at once: records still in the workers and the writer
    assert rows(database) == 30
    assert "not written at shutdown" not in gateway.log_path.read_text()


def test_a_hostile_frame_loses_only_its_own_connection(start_gateway, upstream, tmp_path):
    database = tmp_path / "usage.db"
    gateway = start_gateway(config(upstream.base, database), workers=1)
    (pid,) = writer_pids(gateway)
    (path,) = private_base_directory().glob(f"gateway-usage-{gateway.proc.pid}-*/usage.sock")
    for payload in (FRAME.pack(1 << 30), FRAME.pack(5) + b"\xc1\xc1\xc1\xc1\xc1"):
        with socket.socket(socket.AF_UNIX) as hostile:
            hostile.connect(str(path))
            hostile.sendall(payload)
            hostile.settimeout(5)
            assert hostile.recv(1) == b""  # closed by the writer
    chats(gateway.url, 5)
    wait_for_rows(database, 5)
    assert writer_pids(gateway) == [pid]
    log = gateway.log()
    assert "a worker sent a 1073741824-byte frame" in log and "a worker sent an unreadable frame" in log


def record(number: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{number}",
        started_at=time.time(),
        method="POST",
        path="/v1/chat/completions",
        route="openai",
        endpoint="chat",
        asked="chat",
        provider="openai",
        model="gpt-4o-mini",
        consumer=None,
        team=None,
        stream=False,
        status=200,
        error=None,
        latency_ms=1.0,
        ttft_ms=1.0,
        overhead_ms=0.1,
    )


def test_a_worker_keeps_a_bounded_number_of_records_while_the_writer_is_away(tmp_path, caplog):
    """No writer listening: records wait (the request path never blocks), beyond the capacity
    they are dropped and counted; once the writer listens, the kept ones arrive, in order."""
    path = str(tmp_path / "usage.sock")

    async def scenario() -> list[UsageRecord]:
        spool = UsageSpool(path, capacity=5)
        spool.start()
        for number in range(8):
            spool.record(record(number))
        await asyncio.sleep(0.2)
        assert len(spool) == 5 and spool.dropped == 3
        received: list[UsageRecord] = []
        decode = msgspec.msgpack.Decoder(list[UsageRecord]).decode

        async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                except asyncio.IncompleteReadError:
                    return
                received.extend(decode(await reader.readexactly(size)))

        server = await asyncio.start_unix_server(take, path)
        deadline = time.monotonic() + 5  # the spool retries once a second on its own
        while len(received) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(received) == 5, "the spool did not reconnect by itself"
        await spool.stop()
        server.close()
        return received

    received = asyncio.run(scenario())
    assert [each.request_id for each in received] == [f"req-{n}" for n in range(5)]
    assert "cannot reach the usage writer process" in caplog.text


@pytest.mark.parametrize("count", [2500])
def test_a_large_burst_is_sent_in_bounded_frames(tmp_path, count):
    path = str(tmp_path / "usage.sock")

    async def scenario() -> list[int]:
        sizes: list[int] = []

        async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                except asyncio.IncompleteReadError:
                    return
                sizes.append(len(msgspec.msgpack.decode(await reader.readexactly(size))))

        server = await asyncio.start_unix_server(take, path)
        spool = UsageSpool(path)
        spool.start()
        await asyncio.sleep(0.05)
        for number in range(count):
            spool.record(record(number))
        await spool.stop()
        deadline = time.monotonic() + 5
        while sum(sizes) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        server.close()
        return sizes

    sizes = asyncio.run(scenario())
    assert sum(sizes) == count and max(sizes) <= 1000

"""The Rust shared table from Python: several processes mapping one file share every bucket;
the supervisor's file lifecycle; a killed process's in-flight places come back."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from gateway._native import LimitTableError, SharedLimits
from gateway.control.limits import host
from gateway.control.limits.host import host_table_file, reap_dead_workers
from gateway.settings import reload_settings


def _hammer(path: str, attempts: int, results: multiprocessing.Queue) -> None:
    table = SharedLimits.open(path)
    bucket = table.bucket("calls|chat", 500, 3600.0)
    keyed = table.keyed_bucket("calls|chat|ip", 50, 3600.0)
    admitted = sum(bucket.try_acquire()[0] for _ in range(attempts))
    per_client = sum(keyed.try_acquire(f"10.0.0.{i % 3}")[0] for i in range(attempts))
    results.put((admitted, per_client))


def test_processes_mapping_one_file_admit_exactly_capacity(tmp_path: Path) -> None:
    path = str(tmp_path / "table")
    SharedLimits.create(path, 1024, 8)
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate workers
    results = context.Queue()
    workers = [context.Process(target=_hammer, args=(path, 400, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    counts = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert sum(c[0] for c in counts) == 500
    assert sum(c[1] for c in counts) == 150  # 50 for each of 3 clients
    table = SharedLimits.open(path)
    assert table.bucket("calls|chat", 500, 3600.0).peek()[1] == 0
    assert table.keyed_bucket("calls|chat|ip", 50, 3600.0).peek("10.0.0.9")[1] == 50


def _enter_and_die(path: str, ready: multiprocessing.Event) -> None:
    table = SharedLimits.open(path)
    table.register_worker((os.getpid() << 32) | 1)
    assert table.concurrency("concurrency|chat", 3).try_enter()[0]
    assert table.concurrency("concurrency|chat", 3).try_enter()[0]
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_processes_places_are_reaped(tmp_path: Path) -> None:
    path = str(tmp_path / "table")
    table = SharedLimits.create(path, 64, 8)
    table.register_worker(host._identity(os.getpid()))
    gate = table.concurrency("concurrency|chat", 3)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    doomed = context.Process(target=_enter_and_die, args=(path, ready))
    doomed.start()
    assert ready.wait(60)
    doomed.join(30)
    assert doomed.exitcode == -signal.SIGKILL
    assert gate.in_flight == 2
    assert gate.try_enter() == (True, 3)
    assert gate.try_enter() == (False, 3)
    assert reap_dead_workers(table) == 2
    assert [pid >> 32 for _, pid in table.workers()] == [os.getpid()]
    assert gate.in_flight == 1
    gate.leave()
    assert gate.in_flight == 0


def test_the_supervisor_creates_exports_and_removes_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_LIMITS_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_LIMITS_SLOTS", "1000")
    reload_settings()  # the supervisor reads its settings once, at start
    stale = tmp_path / f"{host.FILE_PREFIX}999999999-abc"  # its supervisor is long gone
    stale.write_bytes(b"")
    alive = tmp_path / f"{host.FILE_PREFIX}{os.getpid()}-abc"
    alive.write_bytes(b"")
    locked = tmp_path / f"{host.FILE_PREFIX}999999998-abc"  # a pid we cannot see, still in use
    locked.write_bytes(b"")
    holder = open(locked, "rb")  # noqa: SIM115
    fcntl.flock(holder, fcntl.LOCK_SH)
    with host_table_file() as path:
        assert os.environ[host.TABLE_ENV] == path
        assert Path(path).parent == tmp_path
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        table = SharedLimits.open(path)
        assert table.bucket_slots == 1024  # rounded up to a power of two
        assert not stale.exists()
        assert alive.exists()
        assert locked.exists()
        holder.close()
    assert not Path(path).exists()
    assert host.TABLE_ENV not in os.environ


def test_invalid_files_and_full_tables(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 8192)
    with pytest.raises(LimitTableError, match="bad magic"):
        SharedLimits.open(str(junk))
    with pytest.raises(LimitTableError):
        SharedLimits.create(str(junk))  # never reuses a file
    with pytest.raises(LimitTableError, match="powers of two"):
        SharedLimits.private(100, 8)
    table = SharedLimits.private(64, 8)
    placed = 0
    with pytest.raises(LimitTableError, match="GATEWAY_LIMITS_SLOTS"):
        for i in range(200):
            table.bucket(f"pinned-{i}", 1, 1.0)
            placed += 1
    assert table.occupancy() == (placed, 0)
    assert placed >= 32  # at least one whole probe window
    with pytest.raises(ValueError):
        table.concurrency("zero", 0)

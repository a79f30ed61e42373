"""The Rust shared counters from Python: processes mapping one file add exactly; a process
killed while creating a counter does not block the others; a full table adds nothing."""

from __future__ import annotations

import multiprocessing
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway._native import CounterTableError, SharedCounters

NOW = 1_800_000_000
DAY = 86_400


def _add(path: str, adds: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    table = SharedCounters.open(path)
    highest = 0
    for i in range(adds):
        # one counter every process adds to, and per-"key" counters created concurrently
        totals = table.add([("global|day", NOW + DAY), (f"key:k_{i % 7}|day", NOW + DAY)], 3, NOW)
        highest = max(highest, totals[0])
    results.put(highest)


def test_processes_adding_at_once_sum_exactly(tmp_path: Path) -> None:
    path = str(tmp_path / "counters")
    SharedCounters.create(path, 1024)
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate workers
    results = context.Queue()
    workers = [context.Process(target=_add, args=(path, 1000, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    highest = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    table = SharedCounters.open(path)
    assert table.totals(["global|day"], NOW) == [4 * 1000 * 3]
    assert max(highest) == 4 * 1000 * 3  # the last addition saw every other one
    per_key = table.totals([f"key:k_{i}|day" for i in range(7)], NOW)
    assert sum(per_key) == 4 * 1000 * 3
    assert table.occupancy() == 8  # one slot per counter key, never two


def test_a_process_killed_while_creating_a_counter_blocks_no_one(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    table = SharedCounters.create(str(path), 64)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)
    # the insert lock (header word 4) left taken by that process, as if killed holding it
    with open(path, "r+b") as handle:
        handle.seek(4 * 8)
        handle.write(struct.pack("<Q", dead_pid))
    started = time.monotonic()
    assert table.add([("new counter", NOW + 60)], 5, NOW) == [5]
    assert time.monotonic() - started < 1.0


def test_a_full_table_raises_and_adds_nothing_until_windows_expire() -> None:
    table = SharedCounters.private(64)
    for i in range(64):
        table.add([(f"k{i}", NOW + 10)], 1, NOW)
    with pytest.raises(CounterTableError, match="no room"):
        table.add([("k0", NOW + 10), ("one more", NOW + 10)], 5, NOW)
    assert table.totals(["k0", "one more"], NOW) == [1, 0]
    assert table.add([("one more", NOW + 20)], 5, NOW + 10) == [5]  # expired slots are reused


def test_expired_counters_read_zero() -> None:
    table = SharedCounters.private(64)
    assert table.add([("a", NOW + 10)], 7, NOW) == [7]
    assert table.totals(["a"], NOW + 9) == [7]
    assert table.totals(["a"], NOW + 10) == [0]
    assert table.add([("a", NOW)], 7, NOW) == [0]  # a window already over counts nothing


def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(b"\0" * 4096)
    with pytest.raises(CounterTableError, match="bad magic"):
        SharedCounters.open(str(path))
    with pytest.raises(CounterTableError, match="power of two"):
        SharedCounters.private(100)

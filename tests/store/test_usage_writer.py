"""The usage database sink and the usage report, against real databases (SQLite and PostgreSQL):
batches of one executemany, the shutdown flush, a bounded buffer that drops and counts while the
database is away and never blocks, an outage logged once without the URL's password, and the
GROUP BY report (day boundaries in UTC, date-only ranges, the key's name)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from gateway.errors import InvalidParameter
from gateway.store import KeyStore, migrate
from gateway.store.db import engine_for
from gateway.usage.query import UsageQuery, format_table, usage_answer, usage_report
from gateway.usage.record import UsageRecord
from gateway.usage.writer import UsageWriter
from tests.conftest import free_port

NOW = time.time()


def usage(i: int = 0, **fields: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "request_id": f"req-{i}",
        "started_at": NOW,
        "method": "POST",
        "path": "/v1/chat/completions",
        "route": "openai",
        "endpoint": "chat",
        "asked": "chat",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "consumer": None,
        "team": None,
        "stream": False,
        "status": 200,
        "error": None,
        "latency_ms": 12.5,
        "ttft_ms": 10.0,
        "overhead_ms": 0.4,
        "prompt_tokens": 5,
        "completion_tokens": 6,
        "cached_tokens": 2,
        "total_tokens": 11,
        "cost_usd": 0.0000225,
    }
    values.update(fields)
    return UsageRecord(**values)


def rows(url: str) -> list[dict[str, Any]]:
    with engine_for(url).connect() as connection:
        result = connection.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))
        return [dict(row) for row in result.mappings()]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def executes(db_url: str) -> list[int]:
    """The number of rows of each INSERT statement executed (one entry per executemany)."""
    migrate(db_url)
    sizes: list[int] = []

    @event.listens_for(engine_for(db_url), "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO usage_records"):
            sizes.append(len(parameters) if many else 1)

    return sizes


def test_batches_of_one_executemany_and_every_field_stored(db_url: str, executes: list[int]) -> None:
    writer = UsageWriter(db_url, batch_size=500, interval=60)
    for i in range(1200):
        writer.record(usage(i, consumer="key_0123", team="alpha"))
    writer.start()  # a flush empties the buffer: two full batches and the rest
    wait_for(lambda: writer.written == 1200)
    writer.close()
    assert executes == [500, 500, 200] and writer.dropped == 0
    stored = rows(db_url)
    assert [row["request_id"] for row in stored] == [f"req-{i}" for i in range(1200)]
    first = stored[0]
    assert first["consumer"] == "key_0123" and first["team"] == "alpha" and first["endpoint"] == "chat"
    assert (first["prompt_tokens"], first["completion_tokens"], first["cached_tokens"]) == (5, 6, 2)
    assert first["cost_nano_usd"] == 22_500  # 0.0000225 USD, exactly
    assert bool(first["stream"]) is False and first["status"] == 200 and first["latency_ms"] == 12.5


def test_a_full_batch_is_written_at_once_and_the_rest_on_the_tick(db_url: str, executes: list[int]) -> None:
    writer = UsageWriter(db_url, batch_size=50, interval=0.3)
    writer.start()
    try:
        for i in range(50):
            writer.record(usage(i))
        wait_for(lambda: writer.written == 50, timeout=0.25)  # woken by the full batch, not the tick
        writer.record(usage(50))
        wait_for(lambda: writer.written == 51, timeout=2)  # a lone record waits for the next tick
    finally:
        writer.close()
    assert executes == [50, 1]


def test_shutdown_writes_what_is_left(db_url: str) -> None:
    migrate(db_url)
    writer = UsageWriter(db_url, interval=60)
    writer.start()
    for i in range(7):
        writer.record(usage(i))
    assert rows(db_url) == []
    writer.close(deadline=5)
    assert len(rows(db_url)) == 7 and writer.dropped == 0 and len(writer) == 0


def test_long_text_is_clipped_to_its_column(db_url: str) -> None:
    migrate(db_url)
    writer = UsageWriter(db_url)
    writer.start()
    writer.record(usage(path="/endpoints/" + "x" * 5000, request_id="r" * 300))
    writer.close()
    [row] = rows(db_url)
    assert len(row["path"]) == 512 and len(row["request_id"]) == 128


def test_a_full_buffer_drops_and_counts_without_blocking() -> None:
    writer = UsageWriter("sqlite:///unused.db", capacity=10)  # not started: nothing empties it
    started = time.perf_counter()
    for i in range(100_000):
        writer.record(usage(i))
    per_record = (time.perf_counter() - started) / 100_000
    assert writer.dropped == 99_990 and len(writer) == 10
    assert per_record < 20e-6  # a length check and an append (~0.1 us), never a wait


def test_unreachable_database_buffers_drops_logs_once_and_never_leaks_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "pw-never-logged-123"
    url = f"postgresql://someone:{password}@127.0.0.1:{free_port()}/usage"  # nothing listens there
    writer = UsageWriter(url, capacity=20, batch_size=5, interval=0.05)
    caplog.set_level(logging.INFO, logger="gateway")
    writer.start()
    try:
        for i in range(5):
            writer.record(usage(i))
        wait_for(lambda: len(writer._pending) == 5)  # the first batch is out, failing and kept
        started = time.perf_counter()
        for i in range(100):
            writer.record(usage(i))
        assert time.perf_counter() - started < 0.05
        assert writer.dropped == 80 and len(writer) == 25  # the buffer's 20 and the batch's 5
        time.sleep(1.6)  # retries at 0.5 s and 1 s fail too
    finally:
        writer.close(deadline=1)
    assert writer.dropped == 105 and writer.written == 0  # what was left at shutdown is counted
    outage = [r for r in caplog.records if "cannot write to the database" in r.getMessage()]
    assert len(outage) == 1, [r.getMessage() for r in caplog.records]
    assert "postgresql someone@127.0.0.1" in outage[0].getMessage()
    assert "not written at shutdown" in caplog.text
    assert password not in caplog.text


def test_an_outage_ends_and_the_buffered_records_are_written(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Unmigrated (no table): writes fail like an outage; once the schema is there they land."""
    caplog.set_level(logging.INFO, logger="gateway")
    writer = UsageWriter(db_url, interval=0.05)
    writer.start()
    try:
        for i in range(30):
            writer.record(usage(i))
        wait_for(lambda: "cannot write to the database" in caplog.text)
        migrate(db_url)
        wait_for(lambda: writer.written == 30, timeout=5)
    finally:
        writer.close()
    assert writer.dropped == 0 and len(rows(db_url)) == 30
    assert "takes writes again" in caplog.text and "0 records dropped meanwhile" in caplog.text
    assert caplog.text.count("cannot write to the database") == 1


def test_a_batch_the_database_refuses_is_dropped_and_later_ones_still_land(postgres: Any) -> None:
    url = postgres.create_database()
    migrate(url)
    writer = UsageWriter(url, interval=60)
    writer.record(usage(1, status=2**40))  # out of an INTEGER's range: PostgreSQL refuses the row
    writer.start()
    wait_for(lambda: writer.dropped == 1)
    writer.record(usage(2))
    writer.close()
    assert [row["request_id"] for row in rows(url)] == ["req-2"]


# -- the report -------------------------------------------------------------------------------
def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def filled(db_url: str) -> str:
    migrate(db_url)
    key, _ = KeyStore(db_url).create("app", team="alpha")
    records = [
        usage(1, started_at=at("2026-11-30T23:59:59.900"), consumer=key.id, team="alpha", cost_usd=0.1),
        usage(2, started_at=at("2026-12-01T00:00:00.000"), consumer=key.id, team="alpha", cost_usd=0.2),
        usage(3, started_at=at("2026-12-01T12:00:00"), endpoint="emb", model="e-3", completion_tokens=0),
        usage(4, started_at=at("2026-12-02T00:00:00"), consumer="jwt:bob", cached_tokens=0),
    ]
    writer = UsageWriter(db_url)
    for record in records:
        writer.record(record)
    writer.start()
    writer.close()
    assert writer.written == 4
    return db_url


def report(
    url: str, group_by: str, start: str = "2026-11-01", end: str = "2026-12-31"
) -> list[dict[str, Any]]:
    return usage_report(url, UsageQuery.parse(group_by, start, end))


def test_report_by_day_is_the_utc_calendar_day(filled: str) -> None:
    if filled.startswith("postgresql"):  # a session time zone far from UTC changes nothing
        with engine_for(filled).connect() as connection:
            name = connection.execute(sa.text("SELECT current_database()")).scalar_one()
            connection.execute(sa.text(f"ALTER DATABASE {name} SET timezone = 'Pacific/Kiritimati'"))
            connection.commit()
        engine_for(filled).dispose()
        with engine_for(filled).connect() as connection:
            assert connection.execute(sa.text("SHOW timezone")).scalar_one() == "Pacific/Kiritimati"
    days = report(filled, "day")
    assert [(row["day"], row["requests"]) for row in days] == [
        ("2026-11-30", 1),
        ("2026-12-01", 2),
        ("2026-12-02", 1),
    ]
    assert days[1]["cost_usd"] == pytest.approx(0.2 + 0.0000225, abs=1e-12)


def test_report_by_key_names_the_key_and_groups_keyless_requests_under_null(filled: str) -> None:
    by_key = {row["key"]: row for row in report(filled, "key")}
    [key_id] = [name for name in by_key if name and name.startswith("key_")]
    assert by_key[key_id]["name"] == "app" and by_key[key_id]["requests"] == 2
    assert by_key[key_id]["cost_usd"] == pytest.approx(0.3, abs=1e-12)
    assert by_key["jwt:bob"]["name"] is None and by_key[None]["requests"] == 1
    teams = {row["team"]: row["requests"] for row in report(filled, "team")}
    assert teams == {"alpha": 2, None: 2}
    models = {row["model"]: (row["requests"], row["completion_tokens"]) for row in report(filled, "model")}
    assert models == {"gpt-4o-mini": (3, 18), "e-3": (1, 0)}
    endpoints = {
        row["endpoint"]: (row["prompt_tokens"], row["cached_tokens"]) for row in report(filled, "endpoint")
    }
    assert endpoints == {"chat": (15, 4), "emb": (5, 2)}


def test_ranges_include_start_exclude_end_and_a_date_end_includes_its_day(filled: str) -> None:
    assert sum(r["requests"] for r in report(filled, "day", "2026-12-01", "2026-12-01")) == 2
    assert (
        sum(r["requests"] for r in report(filled, "day", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z")) == 2
    )
    assert sum(r["requests"] for r in report(filled, "day", "2026-12-01T02:00:00+02:00", "2026-12-02")) == 3
    assert report(filled, "day", "2027-01-01", "2027-01-02") == []
    answer = usage_answer(filled, UsageQuery.parse("endpoint", "2026-12-01", "2026-12-01"))
    assert answer["start"] == "2026-12-01T00:00:00Z" and answer["end"] == "2026-12-02T00:00:00Z"


def test_the_table_has_aligned_columns_and_a_totals_row(filled: str) -> None:
    lines = format_table("endpoint", report(filled, "endpoint")).splitlines()
    assert lines[0].split() == [
        "ENDPOINT", "REQUESTS", "PROMPT_TOKENS", "COMPLETION_TOKENS", "CACHED_TOKENS", "COST_USD",
    ]  # fmt: skip
    assert lines[-1].split() == ["TOTAL", "4", "20", "18", "6", "0.300045"]
    assert len({len(line) for line in lines}) == 1  # right-aligned numbers: every line as wide


def test_parameters_are_checked() -> None:
    assert UsageQuery.parse(None, None, None).group_by == "endpoint"
    default = UsageQuery.parse(None, None, None)
    assert default.end - default.start == timedelta(days=30)
    with pytest.raises(InvalidParameter, match="key, team, endpoint, model, day"):
        UsageQuery.parse("provider", None, None)
    with pytest.raises(InvalidParameter, match="start: not an ISO-8601"):
        UsageQuery.parse("day", "yesterday", None)
    with pytest.raises(InvalidParameter, match="before end"):
        UsageQuery.parse("day", "2026-12-02", "2026-12-01T00:00:00")
    with pytest.raises(InvalidParameter, match="unknown query parameter.*group_by, start, end"):
        UsageQuery.from_query_string(b"group=day")
    # an unencoded "+" in an offset arrives as a space
    query = UsageQuery.from_query_string(b"start=2026-12-01T10:00:00+02:00&end=2026-12-02")
    assert query.start == datetime(2026, 12, 1, 8, tzinfo=UTC)

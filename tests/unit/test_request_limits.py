"""Bounds on what one request may cost: the body's deadline and minimum rate (408), the JSON
limits checked on raw bytes (400 / 413), and what a worker holds open (connections, head size)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.errors import BadRequest, PayloadTooLarge, RequestTimeout, RequestValidationError
from gateway.schemas import validation
from gateway.schemas.validation import decode_json_body, decode_json_object
from gateway.server import connections, http
from gateway.server.http import read_body
from gateway.settings import read_settings, reload_settings

JSON = "application/json"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Sets gateway variables for one test (settings re-read), restored afterwards."""

    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        reload_settings()

    yield set_env
    monkeypatch.undo()
    reload_settings()


# -- the request body's deadline and minimum rate ------------------------------------------------
def scripted(*steps: tuple[float, bytes, bool]) -> Any:
    """An ASGI receive giving `(delay, body, more_body)` messages, then waiting for ever."""
    queue = list(steps)

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.Event().wait()
        delay, body, more = queue.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": body, "more_body": more}

    return receive


def scope(length: int | None = None) -> dict[str, Any]:
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    return {"type": "http", "headers": headers}


def read(receive: Any, length: int | None = None, limit: int = 1 << 20) -> bytes:
    return asyncio.run(read_body(scope(length), receive, limit))


def test_a_body_that_never_comes_times_out_after_the_grace_period(env):
    env(GATEWAY_BODY_GRACE_SECONDS="0.05", GATEWAY_BODY_MIN_BYTES_PER_SECOND="1024")
    with pytest.raises(RequestTimeout) as caught:
        read(scripted(), length=100)
    error = caught.value
    assert error.status == 408
    assert error.headers() == [(b"connection", b"close")]
    assert error.message.startswith("Request body not received in time: 0 of 100 bytes after 0.")
    assert error.message.endswith(
        "A request body must arrive within 300 s, and at 1024 bytes/s or faster after the first 0.05 s."
    )
    body = orjson.loads(error.body("openai"))
    assert body["error"] == {"message": error.message, "type": "timeout", "code": 408}
    assert orjson.loads(error.body()) == {"detail": error.message}


def test_a_trickle_slower_than_the_minimum_rate_times_out(env):
    # 1 byte every 20 ms is 50 bytes/s: the deadline moves 1 ms per byte, the clock 20 ms
    env(GATEWAY_BODY_GRACE_SECONDS="0.1", GATEWAY_BODY_MIN_BYTES_PER_SECOND="1000")
    with pytest.raises(RequestTimeout, match=r"Request body not received in time: \d+ of 100 bytes"):
        read(scripted(*[(0.02, b"x", True)] * 100), length=100)


def test_a_body_at_the_minimum_rate_is_read(env):
    # 100 bytes every 20 ms (5,000 bytes/s) against 1,000 bytes/s: on time past the grace period
    env(GATEWAY_BODY_GRACE_SECONDS="0.05", GATEWAY_BODY_MIN_BYTES_PER_SECOND="1000")
    steps = [(0.02, b"y" * 100, True)] * 15 + [(0.02, b"y" * 100, False)]
    assert read(scripted(*steps)) == b"y" * 1600


def test_the_whole_body_has_a_deadline(env):
    env(GATEWAY_BODY_TIMEOUT_SECONDS="0.15", GATEWAY_BODY_MIN_BYTES_PER_SECOND="0")
    with pytest.raises(RequestTimeout, match=r"must arrive within 0\.15 s\.$"):
        read(scripted(*[(0.02, b"z" * 10_000, True)] * 100))


def test_rules_at_zero_are_off(env):
    env(
        GATEWAY_BODY_TIMEOUT_SECONDS="0",
        GATEWAY_BODY_MIN_BYTES_PER_SECOND="0",
        GATEWAY_BODY_GRACE_SECONDS="0",
    )
    assert read(scripted((0.2, b"{}", False))) == b"{}"


def test_size_limits_still_apply(env):
    with pytest.raises(PayloadTooLarge, match="Request body too large: 2000 bytes"):
        read(scripted(), length=2000, limit=1000)
    with pytest.raises(PayloadTooLarge, match="over 1000 bytes"):
        read(scripted((0, b"a" * 600, True), (0, b"a" * 600, False)), limit=1000)


def test_a_cancellation_not_of_the_deadline_propagates(env):
    env(GATEWAY_BODY_GRACE_SECONDS="0.05")

    async def cancelled() -> None:
        reading = asyncio.ensure_future(read_body(scope(10), scripted(), 100))
        await asyncio.sleep(0.01)
        assert len(http._DEADLINES.reads) == 1
        reading.cancel()  # the server's, e.g. the client went away
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert not http._DEADLINES.reads and not http._DEADLINES.expired

    asyncio.run(cancelled())


def test_bodies_read_leave_nothing_behind(env):
    async def many() -> None:
        for _ in range(100):
            assert await read_body(scope(2), scripted((0, b"{}", False)), 100) == b"{}"
        with pytest.raises(RequestTimeout):
            await read_body(scope(2), scripted(), 100)
        assert not http._DEADLINES.reads and not http._DEADLINES.expired

    env(GATEWAY_BODY_GRACE_SECONDS="0.01")
    asyncio.run(many())


def test_a_disconnect_ends_the_body():
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert read(receive) == b""


# -- JSON limits on the raw bytes ---------------------------------------------------------------
def nested(depth: int) -> bytes:
    return b'{"messages": [], "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_nesting_at_the_limit_is_accepted_and_over_it_refused():
    assert decode_json_object(nested(64), JSON)["messages"] == []
    with pytest.raises(BadRequest) as caught:
        decode_json_object(nested(65), JSON)
    assert caught.value.status == 400
    assert caught.value.detail == (
        "Request body nested too deeply: 65 levels of arrays and objects, the limit is 64."
    )


def test_nesting_no_parser_goes_to_keeps_fastapis_answer():
    with pytest.raises(BadRequest) as caught:
        decode_json_object(b"[" * sys.getrecursionlimit() + b"]" * sys.getrecursionlimit(), JSON)
    assert caught.value.body() == b'{"detail":"There was an error parsing the body"}'


def test_value_and_message_limits(env):
    env(GATEWAY_MAX_JSON_VALUES="20", GATEWAY_MAX_REQUEST_MESSAGES="3")
    three = [{"role": "user", "content": "a"}] * 3
    assert len(decode_json_object(json.dumps({"messages": three}).encode(), JSON)["messages"]) == 3
    with pytest.raises(PayloadTooLarge) as caught:
        decode_json_object(json.dumps({"messages": three * 2}).encode(), JSON)
    assert caught.value.status == 413
    assert caught.value.detail == "Request body too large: more than 3 messages, the limit is 3."
    with pytest.raises(PayloadTooLarge) as caught:
        decode_json_object(json.dumps({"messages": three, "input": list(range(20))}).encode(), JSON)
    assert caught.value.detail == (
        "Request body too large: more than 20 JSON values (array items and object members), the limit is 20."
    )


def test_an_escaped_messages_key_is_counted(env):
    env(GATEWAY_MAX_REQUEST_MESSAGES="1")
    with pytest.raises(PayloadTooLarge, match="more than 1 messages"):
        decode_json_object(b'{"m\\u0065ssages": [{}, {}]}', JSON)


def test_utf16_bodies_are_checked_on_their_text(env):
    env(GATEWAY_MAX_REQUEST_MESSAGES="2")
    # U+225B is the bytes [" in UTF-16-LE: the raw scan reads other structure than the text has
    body = json.dumps({"messages": [{"role": "user", "content": "\u225b"}] * 3}, ensure_ascii=False).encode(
        "utf-16"
    )
    with pytest.raises(PayloadTooLarge, match="more than 2 messages"):
        decode_json_object(body, JSON)
    small = json.dumps({"messages": [{"role": "user", "content": "a"}]}, ensure_ascii=False).encode(
        "utf-16-le"
    )
    assert decode_json_object(small, JSON)["messages"][0]["content"] == "a"


def test_zero_turns_a_json_limit_off(env):
    env(GATEWAY_MAX_JSON_DEPTH="0", GATEWAY_MAX_JSON_VALUES="0", GATEWAY_MAX_REQUEST_MESSAGES="0")
    assert "x" in decode_json_object(nested(500), JSON)


def test_a_body_that_is_not_json_is_not_scanned():
    with pytest.raises(RequestValidationError):
        decode_json_object(b"[" * 100, "text/plain")


def test_a_large_body_is_scanned_in_a_worker_thread(monkeypatch):
    seen: list[tuple[int, bool]] = []
    check = validation.check_json_limits

    def recording(body: bytes, release_gil: bool = False) -> None:
        seen.append((threading.get_ident(), release_gil))
        check(body, release_gil)

    monkeypatch.setattr(validation, "check_json_limits", recording)
    monkeypatch.setattr(validation, "SCAN_IN_THREAD_BYTES", 100)
    small = b'{"messages": []}'
    large = json.dumps({"messages": [], "pad": "x" * 200}).encode()
    assert asyncio.run(decode_json_body(small, JSON)) == {"messages": []}
    assert asyncio.run(decode_json_body(large, JSON))["pad"] == "x" * 200
    assert seen[0] == (threading.get_ident(), False)
    assert seen[1][0] != threading.get_ident() and seen[1][1] is True
    assert len(seen) == 2  # scanned once each
    with pytest.raises(BadRequest, match="nested too deeply"):
        asyncio.run(decode_json_body(nested(65) + b" " * 100, JSON))


# -- settings and what a worker holds open ------------------------------------------------------
def test_the_new_settings_are_read_from_the_environment():
    current = read_settings(
        {
            "GATEWAY_BODY_TIMEOUT_SECONDS": "60",
            "GATEWAY_BODY_GRACE_SECONDS": "2.5",
            "GATEWAY_BODY_MIN_BYTES_PER_SECOND": "512",
            "GATEWAY_MAX_JSON_DEPTH": "32",
            "GATEWAY_MAX_JSON_VALUES": "1000",
            "GATEWAY_MAX_REQUEST_MESSAGES": "10",
            "GATEWAY_WORKER_CONNECTIONS": "100",
            "GATEWAY_MAX_HEADER_BYTES": "16384",
        }
    )
    assert (current.body_timeout_seconds, current.body_grace_seconds, current.body_min_bytes_per_second) == (
        60.0,
        2.5,
        512,
    )
    assert (current.max_json_depth, current.max_json_values, current.max_request_messages) == (32, 1000, 10)
    assert (current.worker_connections, current.max_header_bytes) == (100, 16384)
    defaults = read_settings({})
    assert (defaults.max_json_depth, defaults.max_json_values, defaults.max_request_messages) == (
        64,
        1_000_000,
        50_000,
    )


class FakeLimits:
    """resource.getrlimit / setrlimit for RLIMIT_NOFILE."""

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if self.refuse or limits[0] > self.hard:
            raise ValueError("not allowed")
        self.soft = limits[0]


@pytest.fixture
def nofile(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(soft: int, hard: int, refuse: bool = False) -> FakeLimits:
        fake = FakeLimits(soft, hard, refuse)
        monkeypatch.setattr(connections.resource, "getrlimit", fake.getrlimit)
        monkeypatch.setattr(connections.resource, "setrlimit", fake.setrlimit)
        return fake

    return install


def test_connections_fit_the_open_file_limit(nofile, caplog):
    fake = nofile(100_000, 100_000)
    assert connections.connections_per_worker(4096) == 4096
    assert fake.soft == 100_000  # enough already: left alone

    fake = nofile(1024, 524_288)  # the usual systemd soft limit: raised as far as needed
    assert connections.connections_per_worker(4096) == 4096
    assert fake.soft == 2 * 4096 + connections.RESERVED_FILES

    fake = nofile(1024, 4096)  # a low hard limit: raised to it, the cap lowered to fit
    with caplog.at_level(logging.WARNING, logger="gateway.server"):
        assert connections.connections_per_worker(4096) == (4096 - 256) // 2
    assert fake.soft == 4096
    assert "fits 1920 connections per worker, not 4096" in caplog.text

    nofile(1024, 1024, refuse=True)
    assert connections.connections_per_worker(4096) == (1024 - 256) // 2
    nofile(64, 64)
    assert connections.connections_per_worker(4096) == 24
    assert connections.connections_per_worker(0) == 1


def test_granian_options(env, nofile):
    nofile(100_000, 100_000)
    env(GATEWAY_WORKER_CONNECTIONS="300", GATEWAY_MAX_HEADER_BYTES="1000")
    options = connections.granian_options()
    assert options["backpressure"] == 300
    http1 = options["http1_settings"]
    assert (http1.header_read_timeout, http1.keep_alive, http1.max_buffer_size) == (30_000, True, 8192)

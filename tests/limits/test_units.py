"""Config parsing of limits and storage, and the per-request helpers (keys, estimates, usage)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.control.limits.base import Meter, ratelimit_headers
from gateway.control.limits.redis_store import redact
from gateway.control.limits.requests import client_key, estimate_tokens, reported_tokens
from gateway.errors import ConfigError
from gateway.schemas.responses import ChatChunk, ChatChunkChoice, ChatDelta
from gateway.settings import read_settings
from tests.limits.configs import config, endpoint


def limit_of(body: str, top: str = ""):
    return parse_config(config(endpoint("chat", body), top=top)).endpoints[0].limit


def test_mlflow_block_keeps_its_meaning_and_gains_tokens_and_concurrency():
    limit = limit_of("calls: 10\nrenewal_period: 2 minutes")
    assert (limit.calls, limit.period_seconds, limit.description) == (10, 120.0, "10 per 2 minute")
    assert (limit.scope, limit.key, limit.tokens, limit.concurrency) == ("endpoint", None, None, None)
    full = limit_of("calls: 10\nrenewal_period: day\ntokens: 5000\nconcurrency: 4\nkey: consumer")
    assert (full.tokens, full.concurrency, full.scope, full.unit) == (5000, 4, "consumer", "1 day")


@pytest.mark.parametrize(
    ("key", "scope", "header"),
    [
        ("endpoint", "endpoint", None),
        ("ip", "ip", None),
        ("remote_address", "ip", None),
        ("user", "consumer", None),
        ("header:X-Team", "header", "x-team"),
        ("header: Authorization", "header", "authorization"),
    ],
)
def test_keys(key, scope, header):
    limit = limit_of(f"calls: 1\nrenewal_period: minute\nkey: '{key}'")
    assert (limit.scope, limit.header, limit.key) == (scope, header, key)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("calls: 1\nrenewal_period: minute\nkey: 'header:'", "limit.key: 'header:' names no valid header"),
        ("calls: 1\nrenewal_period: minute\ntokens: 0", "limit.tokens: Input should be a positive integer"),
        ("calls: 1\nrenewal_period: minute\nconcurrency: true", "limit.concurrency: Input should be"),
        ("calls: 0\nrenewal_period: minute", "Failed to parse the rate limit configuration"),
    ],
)
def test_invalid_limits_name_the_endpoint_and_field(body, message):
    with pytest.raises(ConfigError, match="endpoint 'chat'") as caught:
        limit_of(body)
    assert message in str(caught.value)


def test_route_limits():
    routes = """
  - name: split
    task_type: llm/v1/chat
    destinations: [{name: chat, traffic_percentage: 100}]
    limit: {calls: 7, renewal_period: second, key: ip}
"""
    parsed = parse_config(config(endpoint("chat"), routes=routes))
    route_limit = parsed.routes[0].limit
    assert (route_limit.calls, route_limit.scope) == (7, "ip")
    with pytest.raises(ConfigError, match="route 'split': limit:"):
        parse_config(config(endpoint("chat"), routes=routes.replace("calls: 7", "calls: -1")))


def test_storage_from_the_config_or_mlflows_variable():
    def with_variable(uri):
        return read_settings({"MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI": uri})

    plain = parse_config(config(endpoint("chat")), env=with_variable(""))
    assert (plain.limits_storage, plain.limits_failure_mode) == (None, "open")
    top = "limits_storage: redis://h:6379/1\nlimits_failure_mode: closed\n"
    chosen = parse_config(config(endpoint("chat"), top=top), env=with_variable(""))
    assert (chosen.limits_storage, chosen.limits_failure_mode) == ("redis://h:6379/1", "closed")
    env = with_variable("rediss://:pw@cache:6380")
    assert parse_config(config(endpoint("chat")), env=env).limits_storage == "rediss://:pw@cache:6380"
    # the config file wins; memory:// means this host's shared memory
    memory = config(endpoint("chat"), top="limits_storage: memory://\n")
    assert parse_config(memory, env=env).limits_storage is None
    with pytest.raises(ConfigError, match="MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI: storage 'memcached://'"):
        parse_config(config(endpoint("chat")), env=with_variable("memcached://cache:11211"))
    # a URI's credentials are never echoed, however malformed it is
    for bad in ("hunter2@cache:6379", "memcached://admin:hunter2@cache", "s3cr3t-pass://cache"):
        with pytest.raises(ConfigError) as refused:
            parse_config(config(endpoint("chat")), env=with_variable(bad))
        assert "hunter2" not in str(refused.value) and "admin" not in str(refused.value)
    with pytest.raises(ConfigError, match="limits_failure_mode: Input should be 'open' or 'closed'"):
        parse_config(config(endpoint("chat"), top="limits_storage: memory://\nlimits_failure_mode: maybe\n"))


def test_an_unknown_key_still_loads_as_mlflow_ignores_it(tmp_path: Path):
    """MLflow accepts any limit.key and ignores it: a drop-in config must keep loading."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config(endpoint("chat", "calls: 1\nrenewal_period: minute\nkey: team")))
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "limit.key 'team' is not one of endpoint, ip, consumer" in result.stderr
    limit = parse_config(path.read_text()).endpoints[0].limit
    assert limit is not None and (limit.scope, limit.key) == ("endpoint", "team")


def scope(headers: dict[str, str], client: tuple[str, int] | None = ("10.1.2.3", 5555)):
    return {"headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "client": client}


def test_client_keys():
    assert client_key(scope({}), "ip") == "ip:10.1.2.3"
    assert client_key(scope({}, None), "ip") == "ip:unknown"
    both = {"X-Gateway-Consumer": "alice", "Authorization": "Bearer sk-1"}
    assert client_key(scope(both), "consumer") == "consumer:alice"
    assert client_key(scope({"Authorization": "bearer sk-1 "}), "consumer") == "bearer:sk-1"
    assert client_key(scope({"Authorization": "Basic abc"}), "consumer") == "ip:10.1.2.3"
    assert client_key(scope({"X-Team": "red"}), "header", b"x-team") == "header:red"
    assert client_key(scope({}), "header", b"x-team") == "ip:10.1.2.3"


def test_estimates():
    chat = {
        "messages": [
            {"role": "user", "content": "abcdefgh"},
            {"role": "user", "content": [{"type": "text", "text": "abcd"}]},
        ]
    }
    assert estimate_tokens("llm/v1/chat", chat) == (3 + 8, 0)
    assert estimate_tokens("llm/v1/chat", {**chat, "max_tokens": 50, "n": 2}) == (11, 100)
    assert estimate_tokens("llm/v1/chat", {**chat, "max_completion_tokens": 7}) == (11, 7)
    assert estimate_tokens("llm/v1/completions", {"prompt": "x" * 9, "max_tokens": 3}) == (3, 3)
    assert estimate_tokens("llm/v1/embeddings", {"input": ["abcd", "abcd", [1, 2]]}) == (4, 0)


def test_reported_usage():
    assert reported_tokens({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}) == 7
    assert reported_tokens({"input_tokens": 3, "output_tokens": 4}) == 7
    assert reported_tokens({}) is None
    assert reported_tokens(None) is None


def test_meter_prefers_reported_usage_then_streamed_text():
    def chunk(text: str | None, usage=None) -> ChatChunk:
        choices = (
            []
            if text is None
            else [ChatChunkChoice(index=0, finish_reason=None, delta=ChatDelta(content=text))]
        )
        return ChatChunk(id="c", created=1, model="m", choices=choices, usage=usage, provider="p")

    async def relay(batches) -> Meter:
        meter = Meter()
        meter.prompt, meter.counting = 10, True

        async def source():
            for batch in batches:
                yield batch

        async for _ in meter.watch(source()):
            pass
        return meter

    counted = asyncio.run(relay([[chunk("abcd")], [chunk("efgh"), chunk("ij")]]))
    assert counted.used(estimate=99) == 10 + 3
    reported = asyncio.run(relay([[chunk("abcd")], [chunk(None, {"total_tokens": 42})]]))
    assert reported.used(estimate=99) == 42
    assert Meter().used(estimate=99) == 0  # never answered


def test_headers_and_redaction():
    assert ratelimit_headers(10, -3, 2.4) == [
        (b"ratelimit-limit", b"10"),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"3"),
    ]
    assert ratelimit_headers(10, 4, 2.0000000001)[2] == (b"ratelimit-reset", b"2")  # float noise
    assert redact("redis://:secret@host:6379/0") == "redis://host:6379/0"
    assert redact("redis://host:6379") == "redis://host:6379"

"""OpenAI chat streams relayed natively (providers/openai_stream.py, rust/src/chatstream/) give
the client exactly what the Python path gives: the same events (as JSON), the same usage and
text length for the usage record, the same error at the same point, whatever the upstream sends
and however its bytes are split into reads."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import parse_config
from gateway.errors import GatewayError
from gateway.pipeline.context import StreamTally
from gateway.providers import provider_class
from gateway.providers.openai_stream import OpenAIChatStream
from gateway.proxy.limits import BodyLimits
from gateway.proxy.openai_contract import openai_stream_contract
from gateway.proxy.streaming import encode_chunks
from tests.support.transport import RecordedTransport

EVENTS = {"content-type": "text/event-stream"}
ENDPOINT = """
  - name: e
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-in-process-key}}
"""
GENERATED_ID = re.compile(rb"chatcmpl-[0-9a-f]{32}")


async def open_stream(reads: list[bytes]) -> OpenAIChatStream:
    endpoint = parse_config("endpoints:" + ENDPOINT).endpoints[0]
    provider = provider_class(endpoint.provider)(endpoint, RecordedTransport((200, EVENTS, reads)))
    stream = await provider.open_stream("llm/v1/chat", {"messages": [{"role": "user", "content": "hi"}]})
    assert isinstance(stream, OpenAIChatStream)
    return stream


def relay(reads: list[bytes], native: bool, include_usage: bool, openai_route: bool) -> dict[str, Any]:
    """What the client gets (events as JSON, the error ending the stream) and the tally."""

    async def run() -> dict[str, Any]:
        stream = await open_stream(reads)
        tally = StreamTally()
        body = b""
        error = None
        try:
            if native:
                async for piece in stream.client_events(include_usage, openai_route, tally):
                    body += piece
            else:
                async for batch in openai_stream_contract(stream, include_usage, openai_route, tally):
                    body += encode_chunks(batch)
        except GatewayError as exc:
            error = (type(exc).__name__, exc.message)
        body = GENERATED_ID.sub(b"chatcmpl-generated", body)
        assert body == b"" or body.endswith(b"\n\n")
        events = [orjson.loads(part[len(b"data: ") :]) for part in body.split(b"\n\n") if part]
        return {"events": events, "error": error, "usage": tally.usage, "chars": tally.chars}

    return asyncio.run(run())


def both(reads: list[bytes], include_usage: bool = False, openai_route: bool = True) -> dict[str, Any]:
    python = relay(reads, False, include_usage, openai_route)
    native = relay(reads, True, include_usage, openai_route)
    # as JSON: an int and an equal float, or keys in another order, would differ here
    assert orjson.dumps(native) == orjson.dumps(python)
    return native


def sse(*events: Any) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n\n" for e in events)


def chunk(content: Any = "hi", finish: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        **extra,
    }


USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 3,
    "total_tokens": 12,
    "prompt_tokens_details": {"cached_tokens": 4},
}


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("openai_route", [False, True])
def test_a_usual_stream(include_usage: bool, openai_route: bool) -> None:
    body = sse(
        {**chunk(""), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        chunk("Hé 🙂"),
        chunk(" there"),
        chunk(None, "stop"),
        {**chunk(), "choices": [], "usage": USAGE},
        b"[DONE]",
    )
    for size in (1, 7, len(body)):
        reads = [body[i : i + size] for i in range(0, len(body), size)]
        got = both(reads, include_usage, openai_route)
        assert got["error"] is None and got["usage"] == USAGE and got["chars"] == len("Hé 🙂 there")
        last = got["events"][-1]
        assert (last["choices"], last["usage"]) == (
            ([], USAGE) if include_usage else (last["choices"], USAGE)
        )


def test_tool_calls_ids_and_odd_values() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    later = {"index": 0, "id": None, "function": {"arguments": '{"a": 1.50, "b": 1e-7}', "name": None}}
    got = both(
        [
            sse(
                {"choices": [{"delta": {"tool_calls": [call]}}]},  # no id: the stream's own
                {"id": None, "choices": [{"index": "0", "delta": {"tool_calls": [later], "content": [1]}}]},
                {
                    "choices": [{"delta": None, "finish_reason": "tool_calls"}],
                    "usage": {"total_tokens": 1.5e300},
                },
                b"not json",
                b"[1, 2]",
                b"12345",
                {"choices": 0, "usage": None},
            )
        ]
    )
    assert got["events"][0]["id"] == "chatcmpl-generated"
    assert got["events"][1]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "function": {"arguments": later["function"]["arguments"]}}
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"error": {"message": "overloaded", "type": "server_error"}},
        {"error": "plain"},
        {"choices": "nope"},
        {"choices": [None]},
        {"choices": [{"delta": ["x"]}]},
        {"choices": [{"delta": {"tool_calls": {"a": 1}}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]},
        {"choices": 7},
    ],
)
def test_an_event_python_refuses_ends_the_stream_the_same_way(bad: dict[str, Any]) -> None:
    got = both(
        [sse(chunk("a"), chunk("b", "stop"), {"choices": [], "usage": USAGE}) + sse(bad, chunk("never"))]
    )
    assert got["error"] is not None and got["error"][0] == "UpstreamUnavailable"
    # what was delivered before the failure reached the client, the held chunk included
    assert [e["choices"][0]["delta"]["content"] for e in got["events"]] == ["a", "b"]


def test_streams_that_end_without_done_or_without_events() -> None:
    assert both([sse(chunk("a")) + b'data: {"choices": [{"delta": {"content": "tail"}}]}'])["chars"] == 5
    assert both([b": keep-alive\n\n"])["error"] == (
        "UpstreamUnavailable",
        "endpoint 'e' (provider openai) ended its stream without sending any event.",
    )


def test_an_oversized_event_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MAX_STREAM_EVENT_BYTES", "64")
    from gateway.settings import settings

    settings.cache_clear()
    try:
        got = both([sse(chunk("a"), chunk("x" * 100))])
    finally:
        monkeypatch.undo()
        settings.cache_clear()
    assert got["error"] is not None and "GATEWAY_MAX_STREAM_EVENT_BYTES" in got["error"][1]


# -- any upstream, any split --------------------------------------------------------------------
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, json_value)


tool_call = st.fixed_dictionaries(
    {},
    optional={
        "index": maybe(st.integers(0, 3)),
        "id": maybe(st.just("call_1")),
        "type": maybe(st.just("function")),
        "function": maybe(
            st.fixed_dictionaries(
                {}, optional={"name": maybe(st.text(max_size=3)), "arguments": maybe(st.text(max_size=5))}
            )
        ),
    },
)
delta = st.fixed_dictionaries(
    {},
    optional={
        "role": maybe(st.just("assistant")),
        "content": maybe(st.text(max_size=6)),
        "tool_calls": maybe(st.lists(tool_call, max_size=2)),
    },
)
choice = st.fixed_dictionaries(
    {},
    optional={
        "index": maybe(st.integers(0, 2)),
        "delta": maybe(delta),
        "finish_reason": st.one_of(st.none(), st.sampled_from(["stop", "length", "tool_calls"]), json_value),
    },
)
event = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": maybe(st.just("chatcmpl-up")),
            "created": maybe(st.integers(0, 2**40)),
            "model": maybe(st.just("gpt-4o-mini")),
            "choices": maybe(st.lists(choice, max_size=2)),
            "usage": maybe(
                st.fixed_dictionaries(
                    {"prompt_tokens": st.integers(0, 99), "total_tokens": st.integers(0, 99)}
                )
            ),
            "error": json_value,
        },
    ).map(lambda value: json.dumps(value).encode()),  # big integers too, and \u escapes
    st.sampled_from([b"[DONE]", b"not json", b"[1]", b'"text"', b'{"a": 1', b'{"a": 1e999}']),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(event, min_size=0, max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=6),
    include_usage=st.booleans(),
    openai_route=st.booleans(),
    ends_cleanly=st.booleans(),
    event_limit=st.sampled_from([None, 90, 160]),
)
def test_any_stream_split_anywhere(
    events: list[bytes],
    cuts: list[int],
    include_usage: bool,
    openai_route: bool,
    ends_cleanly: bool,
    event_limit: int | None,
) -> None:
    """Any upstream bytes, split into reads anywhere, with and without a stream event limit
    they may outgrow (`GATEWAY_MAX_STREAM_EVENT_BYTES`)."""
    limits = BodyLimits(max_stream_event_bytes=event_limit) if event_limit else BodyLimits.from_settings()
    with mock.patch.object(BodyLimits, "from_settings", return_value=limits):
        split_anywhere(events, cuts, include_usage, openai_route, ends_cleanly)


def split_anywhere(
    events: list[bytes], cuts: list[int], include_usage: bool, openai_route: bool, ends_cleanly: bool
) -> None:
    body = sse(*events)
    if not ends_cleanly and body:
        body = body[:-2]  # the last event lacks its blank line
    reads, at = [], 0
    for cut in cuts:
        reads.append(body[at : at + cut])
        at += cut
    reads.append(body[at:])
    both([read for read in reads if read], include_usage, openai_route)

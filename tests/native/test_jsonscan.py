"""The JSON cost scanner of the Rust extension: counts against json.dumps output of random values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._native import JsonLimits, json_stats

UNLIMITED = JsonLimits(max_depth=2**62, max_values=2**62, max_messages=2**62)


def expected(value: Any) -> tuple[int, int]:
    """(depth, values) of a decoded JSON value."""
    if isinstance(value, list):
        inner = [expected(item) for item in value]
        return 1 + max((d for d, _ in inner), default=0), len(value) + sum(v for _, v in inner)
    if isinstance(value, dict):
        inner = [expected(item) for item in value.values()]
        return 1 + max((d for d, _ in inner), default=0), len(value) + sum(v for _, v in inner)
    return 0, 0


def expected_messages(value: Any) -> int:
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return len(value["messages"])
    return 0


text = st.text(alphabet=st.sampled_from('ab"\\[]{},: \n\té€😀\x00\x1f/'), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["messages", "a", "[", '"{', "messages "]) | text, inner, max_size=5
        )
    ),
    max_leaves=40,
)


@settings(max_examples=300)
@given(json_values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_counts_match_the_decoded_value(value, ensure_ascii, indent):
    body = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent).encode()
    depth, values = expected(value)
    assert json_stats(body) == (depth, values, expected_messages(value))
    assert UNLIMITED.check(body) is None


@settings(max_examples=300)
@given(json_values, st.integers(0, 6), st.integers(0, 30), st.integers(0, 4), st.booleans())
def test_a_limit_is_reported_exactly_when_crossed(value, max_depth, max_values, max_messages, release):
    body = json.dumps(value).encode()
    depth, values = expected(value)
    messages = expected_messages(value)
    limits = JsonLimits(max_depth=max_depth, max_values=max_values, max_messages=max_messages)
    result = limits.check(body, release)
    assert (result is None) == (depth <= max_depth and values <= max_values and messages <= max_messages)
    if result is not None:
        limit, observed = result
        assert observed == {"depth": depth, "values": max_values + 1, "messages": max_messages + 1}[limit]


@given(st.binary(max_size=300))
def test_any_bytes_are_measured_without_raising(data):
    depth, values, messages = json_stats(data)
    assert depth <= len(data) and values <= len(data) and messages <= values
    JsonLimits(max_depth=1, max_values=1, max_messages=1).check(data)


def test_the_million_tiny_messages_stop_at_the_message_limit():
    body = b'{"messages":[' + b",".join([b'{"role":"user","content":"a"}'] * 100_000) + b"]}"
    limits = JsonLimits(max_depth=64, max_values=1_000_000, max_messages=50_000)
    assert limits.check(body) == ("messages", 50_001)
    assert limits.check(body, release_gil=True) == ("messages", 50_001)
    assert json_stats(body) == (3, 300_001, 100_000)


def test_escaped_and_repeated_messages_keys():
    assert json_stats(b'{"m\\u0065ssages": [1, 2, 3]}')[2] == 3
    assert json_stats(b'{"messages": [1, 2, 3], "messages": []}')[2] == 3
    assert json_stats(b'{"other": {"messages": [1, 2, 3]}}')[2] == 0


def test_depth_reports_the_whole_body():
    body = b"[" * 5000 + b"]" * 5000
    assert JsonLimits(max_depth=64, max_values=10**6, max_messages=10).check(body) == ("depth", 5000)


def test_limits_are_kept_and_checked():
    limits = JsonLimits(max_depth=3, max_values=4, max_messages=5)
    assert (limits.max_depth, limits.max_values, limits.max_messages) == (3, 4, 5)
    with pytest.raises(ValueError, match="max_values must not be negative"):
        JsonLimits(max_depth=3, max_values=-1, max_messages=5)
    with pytest.raises(TypeError):
        limits.check("not bytes")  # type: ignore[arg-type]

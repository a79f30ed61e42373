"""ParamScaler rules of the Rust extension."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._native import NativeError, ParamScaler, ScalingError

ANTHROPIC = [
    {
        "field": "max_tokens",
        "fallback": "max_completion_tokens",
        "default": 8192,
        "reject_above": 1_000_000,
        "reject_message": "Invalid value for max_tokens: cannot exceed 1000000.",
    },
    {"field": "max_completion_tokens", "drop": True},
]


def applied(rules: list[dict[str, Any]], payload: dict[str, Any]) -> dict[str, Any]:
    ParamScaler(rules).apply(payload)
    return payload


def test_scale_turns_int_into_float() -> None:
    out = applied([{"field": "temperature", "scale": 0.5}], {"temperature": 1})
    assert out == {"temperature": 0.5}
    assert type(out["temperature"]) is float


def test_scale_by_one_keeps_the_original_object() -> None:
    value = 10**30
    out = applied([{"field": "x", "scale": 1.0}], {"x": value})
    assert out["x"] is value


def test_only_nonzero() -> None:
    rules: list[dict[str, Any]] = [{"field": "t", "scale": 2, "only_nonzero": True}]
    zero = applied(rules, {"t": 0})
    assert zero == {"t": 0} and type(zero["t"]) is int
    assert applied(rules, {"t": 1.5}) == {"t": 3.0}


def test_min_max_clamp_after_scale() -> None:
    tgi: list[dict[str, Any]] = [{"field": "temperature", "scale": 50, "min": 0.001}]
    assert applied(tgi, {"temperature": 0}) == {"temperature": 0.001}
    assert applied(tgi, {"temperature": 0.5}) == {"temperature": 25.0}
    assert applied([{"field": "p", "scale": 2, "max": 1}], {"p": 0.9}) == {"p": 1.0}
    in_range = applied([{"field": "n", "min": 1, "max": 5}], {"n": 3})
    assert in_range == {"n": 3} and type(in_range["n"]) is int


def test_default_and_fallback() -> None:
    assert applied(ANTHROPIC, {}) == {"max_tokens": 8192}
    assert applied(ANTHROPIC, {"max_tokens": None}) == {"max_tokens": 8192}
    assert applied(ANTHROPIC, {"max_completion_tokens": 100}) == {"max_tokens": 100}
    assert applied(ANTHROPIC, {"max_tokens": 5, "max_completion_tokens": 100}) == {"max_tokens": 5}
    assert type(applied(ANTHROPIC, {})["max_tokens"]) is int
    assert applied([{"field": "t", "default": 0.7}], {}) == {"t": 0.7}


def test_reject_above_message_is_exact() -> None:
    scaler = ParamScaler(ANTHROPIC)
    for payload in ({"max_tokens": 1_000_001}, {"max_completion_tokens": 2_000_000}):
        with pytest.raises(ScalingError) as info:
            scaler.apply(payload)
        assert str(info.value) == "Invalid value for max_tokens: cannot exceed 1000000."
    payload = {"max_tokens": 1_000_000}
    scaler.apply(payload)
    assert payload == {"max_tokens": 1_000_000}
    assert issubclass(ScalingError, NativeError) and issubclass(ScalingError, ValueError)


def test_reject_checks_value_before_scaling() -> None:
    scaler = ParamScaler([{"field": "t", "scale": 10, "reject_above": 1, "reject_message": "no"}])
    assert scaler.scale_value("t", 1.0) == 10.0
    with pytest.raises(ScalingError, match="^no$"):
        scaler.scale_value("t", 1.5)


def test_rename_and_drop() -> None:
    rules: list[dict[str, Any]] = [
        {"field": "stop", "rename": "stop_sequences"},
        {"field": "logprobs", "drop": True},
        {"field": "max_tokens", "scale": 2, "rename": "maxOutputTokens"},
    ]
    out = applied(rules, {"stop": ["x"], "logprobs": True, "max_tokens": 3, "keep": 1})
    assert out == {"stop_sequences": ["x"], "maxOutputTokens": 6.0, "keep": 1}
    assert applied(rules, {}) == {}


def test_non_number_raises_scaling_error() -> None:
    scaler = ParamScaler([{"field": "temperature", "scale": 0.5}])
    for bad in ("0.5", True, [1]):
        with pytest.raises(ScalingError, match=r"^Invalid value for temperature: expected a number$"):
            scaler.apply({"temperature": bad})
    payload: dict[str, Any] = {"temperature": None}
    scaler.apply(payload)
    assert payload == {"temperature": None}


def test_rules_apply_in_order() -> None:
    rules: list[dict[str, Any]] = [{"field": "a", "rename": "b"}, {"field": "b", "scale": 3}]
    assert applied(rules, {"a": 2}) == {"b": 6.0}


def test_empty_rules_and_absent_fields() -> None:
    payload = {"x": 1}
    ParamScaler([]).apply(payload)
    ParamScaler([{"field": "absent", "scale": 2, "min": 1}]).apply(payload)
    assert payload == {"x": 1}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"field": "x", "scal": 1}, "rule 0: unknown key 'scal'"),
        ({"scale": 1}, "rule 0: missing required key 'field'"),
        ({"field": 1}, "rule 0: 'field' must be a str"),
        ({"field": "x", "scale": "2"}, "rule 0: 'scale' must be a number"),
        ({"field": "x", "drop": 1}, "rule 0: 'drop' must be a bool"),
        ({"field": "x", "min": 2, "max": 1}, "rule 0: 'min'"),
        ({"field": "x", "rename": "y", "drop": True}, "rule 0: 'rename' and 'drop'"),
        ({"field": "x", "reject_message": "m"}, "rule 0: 'reject_message' requires 'reject_above'"),
        ({"field": "x", "scale": float("nan")}, "rule 0: 'scale' must be finite"),
    ],
)
def test_invalid_rules(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        ParamScaler([rule])


def test_invalid_rule_index_in_message() -> None:
    with pytest.raises(ValueError, match="^rule 1: expected a dict"):
        ParamScaler([{"field": "ok"}, "not a dict"])  # type: ignore[list-item]


def test_scale_value_and_len() -> None:
    scaler = ParamScaler([{"field": "t", "scale": 2}, {"field": "t", "max": 3}])
    assert len(scaler) == 2
    assert scaler.scale_value("t", 1) == 2.0
    assert scaler.scale_value("t", 2) == 3.0
    assert scaler.scale_value("other", 2.5) == 2.5


@given(
    st.floats(-1e6, 1e6),
    st.floats(-100, 100),
    st.floats(-10, 0),
    st.floats(0, 20),
)
def test_clamped_values_stay_in_bounds(value: float, scale: float, lo: float, width: float) -> None:
    scaler = ParamScaler([{"field": "x", "scale": scale, "min": lo, "max": lo + width}])
    payload = {"x": value}
    scaler.apply(payload)
    assert lo <= payload["x"] <= lo + width

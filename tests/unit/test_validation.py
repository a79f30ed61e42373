"""Invalid bodies answered in FastAPI's 422 list format (tests/unit/test_fastapi_422.py compares
them with FastAPI's own, byte for byte)."""

from __future__ import annotations

import pytest

from gateway.errors import RequestValidationError
from gateway.schemas.validation import decode_json_object, validate_payload


def problems(payload, kind="llm/v1/chat"):
    with pytest.raises(RequestValidationError) as info:
        validate_payload(payload, kind)
    return info.value.detail


def test_valid_chat_with_tools_and_parts():
    validate_payload(
        {
            "messages": [
                {"role": "system", "content": "s", "name": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "t"},
                        {"type": "image_url", "image_url": {"url": "data:x"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "content": "r", "tool_call_id": "1"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"anyOf": [{"type": "string"}]}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "seed": 1,
        },
        "llm/v1/chat",
    )


def test_stop_must_be_a_list():
    (problem,) = problems({"messages": [{"role": "u", "content": "x"}], "stop": "END"})
    assert problem["loc"] == ["body", "stop"] and problem["type"] == "list_type"


def test_nested_location():
    (problem,) = problems({"messages": [{"role": "u", "content": "x"}, {"role": 5}]})
    assert problem["loc"] == ["body", "messages", 1, "role"]
    assert problem["type"] == "string_type" and problem["input"] == 5


def test_tool_choice_literal():
    # one error per union member, as pydantic reports them
    literal, model = problems({"messages": [{"role": "u", "content": "x"}], "tool_choice": "sometimes"})
    assert literal["loc"] == ["body", "tool_choice", "literal['none','auto','required']"]
    assert literal["type"] == "literal_error"
    assert model["loc"] == ["body", "tool_choice", "ToolChoice"]


@pytest.mark.parametrize("value", ["s", ["a", "b"], [1, 2], [[1], [2, 3]]])
def test_embedding_inputs(value):
    validate_payload({"input": value}, "llm/v1/embeddings")


@pytest.mark.parametrize("value", [5, [1, "a"], [[1], ["a"]], None])
def test_bad_embedding_inputs(value):
    assert problems({"input": value}, "llm/v1/embeddings")[0]["loc"] == ["body", "input", "str"]


def test_decode_errors():
    with pytest.raises(RequestValidationError) as info:
        decode_json_object(b"{", "application/json")
    assert info.value.detail[0]["type"] == "json_invalid"
    with pytest.raises(RequestValidationError) as info:
        decode_json_object(b"{}", None)
    assert info.value.detail[0]["type"] == "model_attributes_type"

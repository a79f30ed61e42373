"""Body decoding and validation with MLflow's (FastAPI's) 422 list format (spec §4.9)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson

from gateway.errors import RequestValidationError
from gateway.schemas.requests import ChatRequest, CompletionsRequest, EmbeddingsRequest
from gateway.types import CHAT, COMPLETIONS, EndpointType, Payload

SCHEMAS: dict[EndpointType, type[msgspec.Struct]] = {
    CHAT: ChatRequest,
    COMPLETIONS: CompletionsRequest,
    "llm/v1/embeddings": EmbeddingsRequest,
}
NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"
_LOCATED = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_PART = re.compile(r"\.(\w+)|\[(\d+)\]")
_TYPE_NAMES = {
    "int": ("int_type", "Input should be a valid integer"),
    "float": ("float_type", "Input should be a valid number"),
    "str": ("string_type", "Input should be a valid string"),
    "bool": ("bool_type", "Input should be a valid boolean"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("dict_type", "Input should be a valid dictionary"),
}


def decode_json_object(body: bytes, content_type: str | None) -> Payload:
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise _body_error("model_attributes_type", NOT_AN_OBJECT, body.decode("utf-8", "replace"))
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", exc.pos],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    if not isinstance(payload, dict):
        raise _body_error("model_attributes_type", NOT_AN_OBJECT, payload)
    return payload


def validate_payload(payload: Payload, kind: EndpointType) -> None:
    try:
        msgspec.convert(payload, SCHEMAS[kind], strict=True)
    except msgspec.ValidationError as exc:
        raise _translate(str(exc), payload) from None
    if kind == "llm/v1/embeddings":
        _check_embedding_input(payload["input"])


def _body_error(kind: str, msg: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ["body"], "msg": msg, "input": value}])


def _translate(message: str, payload: Payload) -> RequestValidationError:
    """msgspec's 'Expected `int`, got `str` - at `$.n`' -> FastAPI's {type, loc, msg, input}."""
    match = _LOCATED.match(message)
    assert match is not None
    msg, path = match.group("msg"), match.group("path") or ""
    loc: list[str | int] = [name if name else int(index) for name, index in _PATH_PART.findall(path)]
    missing = re.match(r"Object missing required field `(\w+)`", msg)
    if missing:
        loc.append(missing.group(1))
        return RequestValidationError(
            [
                {
                    "type": "missing",
                    "loc": ["body", *loc],
                    "msg": "Field required",
                    "input": _lookup(payload, loc[:-1]),
                }
            ]
        )
    value = _lookup(payload, loc)
    kind, text = _describe(msg)
    return RequestValidationError([{"type": kind, "loc": ["body", *loc], "msg": text, "input": value}])


def _describe(msg: str) -> tuple[str, str]:
    bound = re.match(r"Expected `\w+` (>=|<=|>|<) (-?[\d.]+)", msg)
    if bound:
        op, limit = bound.groups()
        names = {
            ">=": ("greater_than_equal", "greater than or equal to"),
            "<=": ("less_than_equal", "less than or equal to"),
            ">": ("greater_than", "greater than"),
            "<": ("less_than", "less than"),
        }
        kind, words = names[op]
        return kind, f"Input should be {words} {limit.removesuffix('.0')}"
    length = re.match(r"Expected `array` of length >= (\d+)", msg)
    if length:
        return "too_short", f"List should have at least {length.group(1)} item after validation"
    expected = re.match(r"Expected `([\w |]+)`, got `(\w+)`", msg)
    if expected:
        first = expected.group(1).split(" | ")[0]
        if first in _TYPE_NAMES:
            return _TYPE_NAMES[first]
        return "type_error", f"Input should be {expected.group(1)}"
    if msg.startswith("Invalid enum value") or msg.startswith("Invalid value"):
        return "literal_error", msg
    return "value_error", msg


def _lookup(payload: Any, loc: list[str | int]) -> Any:
    value = payload
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _check_embedding_input(value: Any) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, list) and (
        all(isinstance(v, str) for v in value)
        or all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or all(
            isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
            for v in value
        )
    ):
        return
    raise RequestValidationError(
        [
            {
                "type": "union_type",
                "loc": ["body", "input"],
                "msg": "Input should be a string, a list of strings, a list of integers or a list of lists of integers",
                "input": value,
            }
        ]
    )

"""Body decoding and validation with MLflow's (FastAPI's) 422 list format (spec §4.9).

A valid body costs one orjson parse and one strict msgspec conversion. Anything those refuse is
answered exactly as FastAPI answers it: the body is re-read with Python's `json` (FastAPI's
parser, for its messages and positions) and re-validated with pydantic twins of MLflow's models
(schemas/mlflow_models.py, imported on first use), which either produce FastAPI's error list or
accept the body with their lax coercions applied.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import orjson

from gateway.errors import BadRequest, RequestValidationError
from gateway.schemas.requests import ChatRequest, CompletionsRequest, EmbeddingsRequest
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

SCHEMAS: dict[EndpointType, type[msgspec.Struct]] = {
    CHAT: ChatRequest,
    COMPLETIONS: CompletionsRequest,
    EMBEDDINGS: EmbeddingsRequest,
}
# fields typed str | list[str] | list[int] | list[list[int]], which msgspec cannot express;
# True when a list must not be empty
TOKEN_FIELDS: dict[EndpointType, tuple[str, bool]] = {
    COMPLETIONS: ("prompt", True),
    EMBEDDINGS: ("input", False),
}
NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"


def decode_json_object(body: bytes, content_type: str | None) -> Payload:
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    if not is_json_media_type(content_type):
        # FastAPI validates the raw bytes against the model (and answers 500 if they are not UTF-8)
        raise _body_error("model_attributes_type", NOT_AN_OBJECT, body.decode("utf-8", "replace"))
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = _loads_as_fastapi(body)
    if not isinstance(payload, dict):
        raise _body_error("model_attributes_type", NOT_AN_OBJECT, payload)
    return payload


def is_json_media_type(content_type: str | None) -> bool:
    """FastAPI's test (email.message's parse): application/json or application/*+json."""
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    if media.count("/") != 1:
        return False  # email.message reads an invalid type as text/plain
    major, minor = media.split("/")
    return major == "application" and (minor == "json" or minor.endswith("+json"))


def _loads_as_fastapi(body: bytes) -> Any:
    """What FastAPI's json.loads makes of a body orjson refused: its error message and position,
    a 400 for undecodable bytes, or a value (NaN, Infinity, a UTF-8 BOM, UTF-16, ...)."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
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
    except Exception:  # UnicodeDecodeError, RecursionError: FastAPI's 400
        raise BadRequest("There was an error parsing the body") from None


def validate_payload(payload: Payload, kind: EndpointType) -> None:
    """Accept a valid body as it is; anything msgspec refuses goes to the pydantic twins, which
    raise FastAPI's 422 list or accept it with their coercions written into the payload."""
    try:
        msgspec.convert(payload, SCHEMAS[kind], strict=True)
        token_field = TOKEN_FIELDS.get(kind)
        valid = token_field is None or _is_token_input(payload[token_field[0]], token_field[1])
    except msgspec.ValidationError:
        valid = False
    if not valid:
        _revalidate(payload, kind)


def _revalidate(payload: Payload, kind: EndpointType) -> None:
    from gateway.schemas.mlflow_models import revalidate

    revalidate(payload, kind)


def _body_error(kind: str, msg: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ["body"], "msg": msg, "input": value}])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_token_input(value: Any, non_empty: bool) -> bool:
    """str | list[str] | list[int] | list[list[int]], strictly (no bools for ints)."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or (non_empty and not value):
        return False
    return (
        all(isinstance(v, str) for v in value)
        or all(_is_int(v) for v in value)
        or all(isinstance(v, list) and all(_is_int(i) for i in v) for v in value)
    )

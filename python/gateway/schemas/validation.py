"""Body decoding and validation with MLflow's (FastAPI's) 422 list format (spec §4.9).

A valid body costs one orjson parse and one strict msgspec conversion. Anything those refuse is
answered exactly as FastAPI answers it: the body is re-read with Python's `json` (FastAPI's
parser, for its messages and positions) and re-validated with pydantic twins of MLflow's models
(schemas/mlflow_models.py, imported on first use), which either produce FastAPI's error list or
accept the body with their lax coercions applied.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import msgspec
import orjson

from gateway._native import JsonLimits
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, RequestValidationError
from gateway.schemas.requests import ChatRequest, CompletionsRequest, EmbeddingsRequest
from gateway.settings import Settings, settings
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
# a body this large has its limits scanned in a worker thread, without the GIL, so the event
# loop serves other requests meanwhile (the scan runs at about 1-4 ns a byte: ~1-4 ms a MiB)
SCAN_IN_THREAD_BYTES = 1024 * 1024


async def decode_json_body(body: bytes, content_type: str | None) -> Payload:
    """`decode_json_object`, with a large body's limits scanned in a worker thread (the scan
    releases the GIL), so the event loop serves other requests meanwhile.

    The decode itself stays on the loop: orjson (and msgspec, and pydantic for a body msgspec
    refuses) hold the GIL throughout, so a thread would not free the loop. The limits are what
    bound it: measured on the 2-core CI machine (benches/jsonscan.py), the largest bodies within
    them hold the loop ~0.15 s (one 32 MiB string) to ~0.35 s (1M values in 6-31 MiB, or 50k
    messages that take the pydantic path), where a million tiny messages held it ~1.5-3.5 s."""
    if len(body) < SCAN_IN_THREAD_BYTES or not is_json_media_type(content_type):
        return decode_json_object(body, content_type)
    await asyncio.to_thread(check_json_limits, body, True)
    return decode_json_object(body, content_type, scanned=True)


def decode_json_object(body: bytes, content_type: str | None, *, scanned: bool = False) -> Payload:
    """The JSON object in `body`, after its limits are checked on the raw bytes (unless the
    caller has done so: `scanned`): MLflow's 422 for anything else."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    if not is_json_media_type(content_type):
        # FastAPI validates the raw bytes against the model (and answers 500 if they are not UTF-8)
        raise _body_error("model_attributes_type", NOT_AN_OBJECT, body.decode("utf-8", "replace"))
    if not scanned:
        check_json_limits(body)
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
    _check_transcoded_limits(body)
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


# -- what a body may cost before it becomes Python objects -----------------------------------
_limits: tuple[Settings, JsonLimits] | None = None


def json_limits() -> JsonLimits:
    """The scanner for the current settings (built again only when they are re-read)."""
    global _limits
    current = settings()
    if _limits is None or _limits[0] is not current:
        unlimited = 2**62
        _limits = (
            current,
            JsonLimits(
                max_depth=current.max_json_depth or unlimited,
                max_values=current.max_json_values or unlimited,
                max_messages=current.max_request_messages or unlimited,
            ),
        )
    return _limits[1]


def check_json_limits(body: bytes, release_gil: bool = False) -> None:
    """One pass over the raw bytes, building nothing: a body nested deeper than
    GATEWAY_MAX_JSON_DEPTH gets 400, one holding more values (array items and object members)
    than GATEWAY_MAX_JSON_VALUES or more than GATEWAY_MAX_REQUEST_MESSAGES messages gets 413.

    The values and messages limits are 413: the content is larger than the gateway will
    process, and a smaller request is the fix. Depth is a 400, as FastAPI (MLflow) answers a
    body nested deeper than its parser goes; a body that deep still gets FastAPI's own answer."""
    limits = json_limits()
    exceeded = limits.check(body, release_gil)
    if exceeded is not None:
        raise _limit_error(limits, *exceeded)


def _limit_error(limits: JsonLimits, limit: str, observed: int) -> GatewayError:
    if limit == "depth":
        if observed >= sys.getrecursionlimit():
            return BadRequest("There was an error parsing the body")  # FastAPI's RecursionError
        return BadRequest(
            f"Request body nested too deeply: {observed} levels of arrays and objects, "
            f"the limit is {limits.max_depth}."
        )
    if limit == "values":
        return PayloadTooLarge(
            f"Request body too large: more than {limits.max_values} JSON values (array items and "
            f"object members), the limit is {limits.max_values}."
        )
    return PayloadTooLarge(
        f"Request body too large: more than {limits.max_messages} messages, "
        f"the limit is {limits.max_messages}."
    )


def _check_transcoded_limits(body: bytes) -> None:
    """json.loads reads UTF-16 and UTF-32 bodies too, whose bytes the raw scan cannot read as
    JSON structure: those are scanned again as the UTF-8 of their text."""
    encoding = json.detect_encoding(body)
    if encoding.startswith("utf-8"):
        return
    try:
        text = body.decode(encoding, "surrogatepass")
    except UnicodeDecodeError:
        return  # json.loads fails the same way: FastAPI's 400
    check_json_limits(text.encode("utf-8", "surrogatepass"))


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

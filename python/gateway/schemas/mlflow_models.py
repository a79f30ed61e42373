"""pydantic v2 twins of MLflow's request models, for bodies that msgspec has already refused.

MLflow validates request bodies with pydantic behind FastAPI, so a bad body gets pydantic's
error list (texts, `ctx`, one error per union member). The hot path stays msgspec
(schemas/requests.py); only a body msgspec refuses comes here, so a worker that never sees a
bad body never imports pydantic. Validation runs as FastAPI runs it: lax python mode,
`from_attributes=True`, errors from `errors(include_url=False)` with "body" put in front of each
`loc` and every value made JSON-safe the way FastAPI's `jsonable_encoder` does. A body pydantic
accepts (lax coercion, `"n": "2"`) is accepted, with the coerced values written back.

Field order, class names (they appear in union `loc`s), defaults and constraints follow
mlflow.gateway.schemas.{chat,completions,embeddings} and mlflow.types.chat. Deliberate
differences from MLflow, kept identical in the msgspec structs:

- a tool's `function.parameters` is any JSON object (the JSON Schema is forwarded whole;
  MLflow re-models it and drops keywords), so a missing `properties` is no error either
  (MLflow 3.18 gives it a default);
- a chat message may carry `name` (a string), which reaches the provider;
- completions `prompt` is `str | list[str] | list[int] | list[list[int]]` (OpenAI's forms) and
  a list must not be empty; MLflow takes a string only.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import RequestValidationError
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload


class _Body(BaseModel):
    """A top-level body: unknown keys are kept (and forwarded), as MLflow's RequestModel."""

    model_config = ConfigDict(extra="allow")


# -- content parts: a list of these is discriminated on "type" ------------------------------
class TextContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageContentPart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(BaseModel):
    data: str
    format: Literal["wav", "mp3"]


class AudioContentPart(BaseModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


class ReasoningSummaryPart(BaseModel):
    type: Literal["summary_text"]
    text: str


class ReasoningContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["reasoning"]
    summary: list[ReasoningSummaryPart] = Field(default_factory=list)


ContentParts = list[
    Annotated[
        TextContentPart | ImageContentPart | AudioContentPart | ReasoningContentPart,
        Field(discriminator="type"),
    ]
]


# -- messages ---------------------------------------------------------------------------------
class Function(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ToolCall(BaseModel):
    id: str
    type: str = "function"
    function: Function
    thought_signature: str | None = None


class ChatMessage(BaseModel):
    role: str
    content: Annotated[str | ContentParts, Field(union_mode="left_to_right")] | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    tool_call_id: str | None = None
    name: str | None = None  # ours: MLflow drops it


# -- tools ------------------------------------------------------------------------------------
class FunctionToolDefinition(BaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # ours: any JSON Schema object, kept whole
    strict: bool | None = None


class UnityCatalogFunctionToolDefinition(_Body):
    name: str


class ChatToolWithUC(_Body):
    type: Literal["function", "uc_function"]
    function: FunctionToolDefinition | None = None
    uc_function: UnityCatalogFunctionToolDefinition | None = None


class ToolChoiceFunction(BaseModel):
    name: str


class ToolChoice(BaseModel):
    type: Literal["function"]
    function: ToolChoiceFunction


# -- response_format --------------------------------------------------------------------------
with warnings.catch_warnings():
    # the field is called "schema" on the wire; pydantic warns that it shadows BaseModel.schema
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class JsonSchemaSpec(BaseModel):
        model_config = ConfigDict(extra="allow")

        name: str
        schema: dict[str, Any] = Field(...)  # type: ignore[assignment]  # shadows BaseModel.schema
        strict: bool = True


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


# -- request bodies ---------------------------------------------------------------------------
class SamplingParams(BaseModel):
    n: int = Field(1, ge=1)
    stop: list[str] | None = Field(None, min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    model: str | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    top_k: int | None = Field(None, ge=1)


class ChatRequest(SamplingParams, _Body):
    messages: list[ChatMessage] = Field(..., min_length=1)
    tools: list[ChatToolWithUC] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None


class CompletionsRequest(SamplingParams, _Body):
    # ours: OpenAI's prompt forms; MLflow's is `prompt: str`
    prompt: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1)]
    )


class EmbeddingsRequest(_Body):
    input: str | list[str] | list[int] | list[list[int]]


MODELS: dict[EndpointType, type[BaseModel]] = {
    CHAT: ChatRequest,
    COMPLETIONS: CompletionsRequest,
    EMBEDDINGS: EmbeddingsRequest,
}


def revalidate(payload: Payload, kind: EndpointType) -> None:
    """Validate as MLflow would: raise its 422 list, or accept and write the coerced values of
    the declared top-level fields back into the payload (extra keys, nested ones included,
    stay as they came)."""
    model = MODELS[kind]
    try:
        validated = model.model_validate(payload, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError([_render(error) for error in exc.errors(include_url=False)]) from None
    coerced = validated.model_dump(exclude_unset=True)
    for name in model.model_fields:
        if name in payload and name in coerced:
            payload[name] = _merge(payload[name], coerced[name])


def _render(error: Any) -> dict[str, Any]:
    """One pydantic error as FastAPI answers it: loc under "body", values JSON-safe."""
    rendered: dict[str, Any] = {}
    for key, value in error.items():
        rendered[key] = ["body", *value] if key == "loc" else _jsonable(value)
    return rendered


def _jsonable(value: Any) -> Any:
    """What FastAPI's jsonable_encoder makes of the values an error can carry."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, BaseException):
        return _jsonable(vars(value))  # jsonable_encoder falls back to vars(): {} for most
    return str(value)


def _merge(raw: Any, coerced: Any) -> Any:
    """The coerced value, keeping whatever keys the raw objects carry that the models drop."""
    if isinstance(raw, dict) and isinstance(coerced, dict):
        for key, item in coerced.items():
            if key in raw:
                raw[key] = _merge(raw[key], item)
        return raw
    if isinstance(raw, list) and isinstance(coerced, list) and len(raw) == len(coerced):
        return [_merge(old, new) for old, new in zip(raw, coerced, strict=True)]
    return coerced

"""Request schemas (spec §4), used to validate at the decode boundary.

The payload itself stays a dict so that extra fields (seed, user, logprobs, ...) reach the
provider untouched; these Structs only check it. msgspec ignores unknown fields. They accept
no more than schemas/mlflow_models.py (MLflow's pydantic models, with our deliberate
differences listed there), which answers for every body these refuse.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

PositiveInt = Annotated[int, Meta(ge=1)]


class JsonSchemaFormat(Struct):
    name: str
    schema: dict[str, Any]
    strict: bool = True


class ResponseFormat(Struct):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class SamplingParams(Struct, kw_only=True):
    n: PositiveInt = 1
    stop: Annotated[list[str], Meta(min_length=1)] | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    model: str | None = None
    response_format: ResponseFormat | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    top_k: PositiveInt | None = None


class TextPart(Struct, tag_field="type", tag="text"):
    text: str


class ImageUrl(Struct):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(Struct, tag_field="type", tag="image_url"):
    image_url: ImageUrl


class InputAudio(Struct):
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(Struct, tag_field="type", tag="input_audio"):
    input_audio: InputAudio


class SummaryText(Struct):
    type: Literal["summary_text"]
    text: str


class ReasoningPart(Struct, tag_field="type", tag="reasoning"):
    summary: list[SummaryText] = field(default_factory=list)


ContentPart = TextPart | ImagePart | AudioPart | ReasoningPart


class FunctionCall(Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(Struct):
    id: str
    function: FunctionCall
    type: str = "function"
    thought_signature: str | None = None


class ChatMessage(Struct):
    role: str
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    tool_call_id: str | None = None
    name: str | None = None


class FunctionDef(Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class UCFunction(Struct):
    name: str


class Tool(Struct):
    type: Literal["function", "uc_function"]
    function: FunctionDef | None = None
    uc_function: UCFunction | None = None


class ToolChoiceFunction(Struct):
    name: str


class ToolChoice(Struct):
    type: Literal["function"]
    function: ToolChoiceFunction


class ChatRequest(SamplingParams, kw_only=True):
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None


class CompletionsRequest(SamplingParams, kw_only=True):
    # str | list[str] | list[int] | list[list[int]], a list not empty: checked by hand
    prompt: Any


class EmbeddingsRequest(Struct, kw_only=True):
    # str | list[str] | list[int] | list[list[int]]: checked by hand (msgspec unions hold one list type)
    input: Any

"""Anthropic Messages API translation (spec §7.2), shared by every Claude upstream.

Plain functions from the standard chat/completions payloads to a Messages API body and back,
plus the stateful stream translator. The `anthropic` provider adds `model` and its headers;
Claude on Vertex AI sends the same body without `model` and with
`anthropic_version: "vertex-2023-10-16"` (see `vertex_body`).

Where this differs from MLflow (spec §12 item 12), on purpose:
* list-form system content is joined as text (MLflow answers 500);
* a tool without `description` or `parameters` is accepted (MLflow answers 500);
* assistant text sent alongside tool calls is kept as a text block before the `tool_use` blocks;
* `thinking` blocks never reach `content` (MLflow prepends the model's reasoning to the answer);
* `developer` messages count as system messages; `parallel_tool_calls: false` without a
  `tool_choice` still disables parallel tool use (as `auto`); `stream_options` is not forwarded.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import orjson

from gateway.errors import InvalidParameter, UpstreamUnavailable
from gateway.providers.base import StreamTranslator, invalid_field, json_schema_of
from gateway.schemas.responses import (
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatDelta,
    ChatMessageOut,
    ChatResponse,
    Chunk,
    CompletionsChoice,
    CompletionsChunk,
    CompletionsChunkChoice,
    CompletionsResponse,
)
from gateway.types import CHAT, COMPLETIONS, Payload

MAX_TOKENS_CAP = "Invalid value for max_tokens: cannot exceed 1000000."
BOTH_SAMPLERS = "Cannot set both 'temperature' and 'top_p' parameters."
COMPLETIONS_TOP_P = f"{BOTH_SAMPLERS} Please use only the temperature parameter for your query."
JSON_OBJECT_INSTRUCTION = (
    "Respond with only a single valid JSON object. Do not include any explanatory text, markdown, "
    "or code fences before or after the JSON object."
)
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"

# run by the Rust ParamScaler before the body is built: Anthropic requires max_tokens
SCALING_RULES: dict[Any, list[dict[str, Any]]] = {
    kind: [
        {
            "field": "max_tokens",
            "fallback": "max_completion_tokens",
            "default": 8192,
            "reject_above": 1_000_000,
            "reject_message": MAX_TOKENS_CAP,
        },
        {"field": "max_completion_tokens", "drop": True},
        {"field": "temperature", "scale": 0.5},
    ]
    for kind in (CHAT, COMPLETIONS)
}

FINISH_REASONS = {
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
TOOL_CHOICES = {"none": "none", "auto": "auto", "required": "any"}
DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.DOTALL)
# JSON-Schema keywords whose values are schemas, maps of schemas or lists of schemas
SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_ONE = ("items", "not", "additionalProperties", "contains")


# OpenAI parameters at their neutral values, as OpenAI clients send them by default (LangChain
# sends all four): dropped, since they ask for nothing and the Messages API refuses them
NEUTRAL: tuple[tuple[str, Any], ...] = (
    ("top_p", 1),
    ("frequency_penalty", 0),
    ("presence_penalty", 0),
    ("logit_bias", {}),
)


def _drop_neutral(body: Payload) -> None:
    for key, value in NEUTRAL:
        if key in body and body[key] == value and not isinstance(body[key], bool):
            del body[key]


# -- requests ---------------------------------------------------------------------------
def chat_body(payload: Payload) -> Payload:
    """A validated, scaled chat payload -> a Messages API body (without `model`)."""
    body = dict(payload)
    _drop_neutral(body)
    if "temperature" in body and "top_p" in body:
        raise InvalidParameter(BOTH_SAMPLERS)
    response_format = _common(body)
    system, body["messages"] = translate_messages(body["messages"])
    if system is not None:
        body["system"] = system
    tools = body.pop("tools", None)
    if tools is not None:
        body["tools"] = [translate_tool(tool) for tool in tools]
    choice = translate_tool_choice(
        body.pop("tool_choice", None), body.pop("parallel_tool_calls", None), tools is not None
    )
    if choice is not None:
        body["tool_choice"] = choice
    _response_format(body, response_format)
    return body


def completions_body(payload: Payload) -> Payload:
    """A completions payload served through the Messages API (the legacy /v1/complete is
    retired): the prompt becomes one user message."""
    body = dict(payload)
    _drop_neutral(body)
    if "top_p" in body:
        raise InvalidParameter(COMPLETIONS_TOP_P)
    response_format = _common(body)
    body["messages"] = [{"role": "user", "content": body.pop("prompt")}]
    _response_format(body, response_format)
    return body


def vertex_body(body: Payload) -> Payload:
    """Claude on Vertex AI: the same body, no `model`, the version in the body."""
    return {"anthropic_version": VERTEX_ANTHROPIC_VERSION, **{k: v for k, v in body.items() if k != "model"}}


def _common(body: Payload) -> Any:
    n = body.pop("n", 1)
    if n != 1:
        raise InvalidParameter(f"'n' must be '1' for the Anthropic provider. Received value: '{n}'.")
    if "stop" in body:
        body["stop_sequences"] = body.pop("stop")
    body.pop("stream_options", None)  # OpenAI-only; usage is always reported
    return body.pop("response_format", None)


def translate_messages(messages: list[Payload]) -> tuple[str | None, list[Payload]]:
    system: list[str] = []
    out: list[Payload] = []
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.append(_system_text(content, index))
        elif role == "user":
            out.append({"role": "user", "content": _user_content(content)})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_content(message, index)})
        elif role == "tool":
            result: Payload = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
            if content is not None:
                result["content"] = _user_content(content)
            previous = out[-1]["content"] if out and out[-1]["role"] == "user" else None
            if isinstance(previous, list) and previous and previous[-1].get("type") == "tool_result":
                previous.append(result)  # parallel tool results share one user turn
            else:
                out.append({"role": "user", "content": [result]})
    return ("\n".join(system) if system else None), out


def _system_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    texts = []
    for part in content:
        if part.get("type") != "text":
            raise invalid_field(("messages", index, "content"), "System message parts must be text.", part)
        texts.append(part["text"])
    return "\n".join(texts)


def _user_content(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [_image(part) if part.get("type") == "image_url" else part for part in content]


def _image(part: Payload) -> Payload:
    url = part["image_url"]["url"]
    match = DATA_URL.fullmatch(url)
    if match is None:
        return {"type": "text", "text": f"[unsupported image reference: {url}]"}
    source = {"type": "base64", "media_type": match.group(1), "data": match.group(2)}
    return {"type": "image", "source": source}


def _assistant_content(message: Payload, index: int) -> Any:
    content, calls = message.get("content"), message.get("tool_calls")
    if not calls:
        return content
    blocks: list[Payload] = []
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        blocks.extend(content)
    for position, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            loc = ("messages", index, "tool_calls", position, "function", "arguments")
            raise invalid_field(loc, "Tool call arguments must be a JSON object.", arguments) from None
        blocks.append({"type": "tool_use", "id": call["id"], "name": function.get("name"), "input": parsed})
    return blocks


def translate_tool(tool: Payload) -> Payload:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        raise InvalidParameter(
            f"Only function calling tool is supported, but received tool type {tool.get('type')}"
        )
    out: Payload = {"name": function["name"]}
    if function.get("description") is not None:
        out["description"] = function["description"]
    # every JSON-Schema keyword is kept; MLflow's injected defaults stay the defaults
    out["input_schema"] = {"type": "object", "properties": {}, **(function.get("parameters") or {})}
    return out


def translate_tool_choice(choice: Any, parallel: Any, has_tools: bool) -> Payload | None:
    if isinstance(choice, str):
        out: Payload | None = {"type": TOOL_CHOICES.get(choice, choice)}
    elif isinstance(choice, dict):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        out = {"type": "auto"} if parallel is False and has_tools else None
    if out is not None and parallel is False and out["type"] in ("auto", "any", "tool"):
        out["disable_parallel_tool_use"] = True
    return out


def _response_format(body: Payload, response_format: Any) -> None:
    if not isinstance(response_format, dict):
        return
    kind = response_format.get("type")
    if kind == "json_object":
        system = body.get("system")
        body["system"] = f"{system}\n{JSON_OBJECT_INSTRUCTION}" if system else JSON_OBJECT_INSTRUCTION
    elif kind == "json_schema":
        schema = closed_schema(copy.deepcopy(json_schema_of(response_format)["schema"]))
        if schema is not None:  # an open-ended object cannot be expressed: MLflow skips it too
            output_config = body.get("output_config")
            base = output_config if isinstance(output_config, dict) else {}
            body["output_config"] = {**base, "format": {"type": "json_schema", "schema": schema}}


def closed_schema(schema: Any) -> Any:
    """Anthropic's structured output needs `additionalProperties: false` on every object;
    None when an object has no `properties` (a free-form map). Mutates its argument."""
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema:
        if not isinstance(schema.get("properties"), dict):
            return None
        schema["additionalProperties"] = False
    children: list[Any] = []
    for key in SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            children.extend(schema[key].values())
    for key in (*SCHEMA_LISTS, *SCHEMA_ONE):
        value = schema.get(key)
        children.extend(value if isinstance(value, list) else [value])
    for child in children:
        if isinstance(child, dict) and closed_schema(child) is None:
            return None
    return schema


# -- responses --------------------------------------------------------------------------
def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop")


def usage(raw: Any) -> Payload:
    """prompt = input + cache read + cache creation; extras kept; cache reads as cached_tokens."""
    if not isinstance(raw, dict):
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    cache_read = raw.get("cache_read_input_tokens")
    prompt = (
        (raw.get("input_tokens") or 0) + (cache_read or 0) + (raw.get("cache_creation_input_tokens") or 0)
    )
    completion = raw.get("output_tokens") or 0
    out: Payload = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    for key, value in raw.items():
        if key not in ("input_tokens", "output_tokens", "cache_read_input_tokens") and value is not None:
            out[key] = value
    if cache_read is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cache_read}
    return out


def chat_response(data: Payload, provider: str) -> ChatResponse:
    """Content is the text blocks only: thinking blocks are the model's reasoning, not its answer."""
    texts: list[str] = []
    calls: list[Payload] = []
    for block in data["content"]:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
    message = ChatMessageOut(
        role="assistant", content="".join(texts) if texts else None, tool_calls=calls or None
    )
    return ChatResponse(
        id=data.get("id"),
        created=int(time.time()),
        model=data["model"],
        choices=[ChatChoice(index=0, message=message, finish_reason=finish_reason(data.get("stop_reason")))],
        usage=usage(data.get("usage")),
        provider=provider,
    )


def completions_response(data: Payload) -> CompletionsResponse:
    text = "".join(block["text"] for block in data["content"] if block["type"] == "text")
    counted = usage(data.get("usage"))
    return CompletionsResponse(
        id=data.get("id"),
        created=int(time.time()),
        model=data["model"],
        choices=[CompletionsChoice(index=0, text=text, finish_reason=finish_reason(data.get("stop_reason")))],
        usage={key: counted[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")},
    )


# -- streams ----------------------------------------------------------------------------
class MessagesStreamTranslator(StreamTranslator):
    """Anthropic SSE events -> OpenAI-style chunks: the role first, text and tool-call deltas
    (tool calls numbered 0, 1, ... apart from text blocks, id and name on their first delta),
    the finish_reason, then one usage chunk with `choices: []`. Thinking deltas are dropped."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.id: str | None = None
        self.model: str | None = None
        self.created = int(time.time())
        self.raw_usage: Payload = {}
        self.tool_calls: dict[int, int] = {}  # content block index -> tool call index
        self.stopped = False

    def event(self, name: str, data: Any) -> list[Chunk]:
        kind = data.get("type") or name
        if kind == "message_start":
            message = data["message"]
            self.id, self.model = message.get("id"), message.get("model")
            self.raw_usage.update(message.get("usage") or {})
            return [self.chat(ChatDelta(role="assistant", content=""))] if self.kind == CHAT else []
        if kind == "content_block_start":
            return self.block_start(data["index"], data["content_block"])
        if kind == "content_block_delta":
            return self.block_delta(data["index"], data["delta"])
        if kind == "message_delta":
            self.raw_usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = finish_reason(data["delta"].get("stop_reason"))
            return [self.chat(ChatDelta(), reason) if self.kind == CHAT else self.text("", reason)]
        if kind == "message_stop":
            self.stopped = True
            return [self.usage_chunk()]
        if kind == "error":
            error = data.get("error") or {}
            raise UpstreamUnavailable(
                f"Anthropic returned {error.get('type')} while streaming: {error.get('message')}"
            )
        return []  # ping, content_block_stop and event types added later

    def finish(self) -> list[Chunk]:
        if not self.stopped:
            raise UpstreamUnavailable(f"{self.provider.label()} ended the stream before message_stop.")
        return []

    def block_start(self, index: int, block: Payload) -> list[Chunk]:
        if block.get("type") == "text" and block.get("text"):
            return [self.content(block["text"])]
        if block.get("type") != "tool_use" or self.kind != CHAT:
            return []
        position = self.tool_calls[index] = len(self.tool_calls)
        call = {
            "index": position,
            "id": block["id"],
            "type": "function",
            "function": {"name": block["name"], "arguments": ""},
        }
        return [self.chat(ChatDelta(tool_calls=[call]))]

    def block_delta(self, index: int, delta: Payload) -> list[Chunk]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self.content(delta["text"])]
        if kind == "input_json_delta" and index in self.tool_calls and delta.get("partial_json"):
            call = {
                "index": self.tool_calls[index],
                "id": None,
                "type": None,
                "function": {"name": None, "arguments": delta["partial_json"]},
            }
            return [self.chat(ChatDelta(tool_calls=[call]))]
        return []  # thinking, signature and citation deltas are not part of the answer

    def content(self, text: str) -> Chunk:
        return self.chat(ChatDelta(content=text)) if self.kind == CHAT else self.text(text)

    def chat(self, delta: ChatDelta, reason: str | None = None) -> ChatChunk:
        choice = ChatChunkChoice(index=0, finish_reason=reason, delta=delta)
        return ChatChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=None,
            provider=self.provider.name,
        )

    def text(self, text: str, reason: str | None = None) -> CompletionsChunk:
        choice = CompletionsChunkChoice(index=0, finish_reason=reason, text=text)
        return CompletionsChunk(
            id=self.id, created=self.created, model=self.model, choices=[choice], usage=None
        )

    def usage_chunk(self) -> Chunk:
        counted = usage(self.raw_usage)
        if self.kind == CHAT:
            return ChatChunk(
                id=self.id,
                created=self.created,
                model=self.model,
                choices=[],
                usage=counted,
                provider=self.provider.name,
            )
        totals = {key: counted[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return CompletionsChunk(id=self.id, created=self.created, model=self.model, choices=[], usage=totals)

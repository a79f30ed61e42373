"""OpenAI-style chat and completions <-> Bedrock's Converse API (spec §7.10, with the fixes
of §12 item 15: tool_choice, response_format and top_k reach the model)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from gateway.errors import InvalidParameter, UpstreamError, UpstreamUnavailable
from gateway.providers.base import HttpProvider, StreamTranslator, json_schema_of
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
from gateway.types import CHAT, EndpointType, Payload

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
# Converse request fields a client may send as extras; anything else is not Converse's and is
# left out (Bedrock rejects unknown fields)
PASSTHROUGH = (
    "guardrailConfig",
    "performanceConfig",
    "requestMetadata",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "serviceTier",
)
# streamed exceptions -> the HTTP status Bedrock gives the same error on a plain call
EXCEPTION_STATUS = {
    "validationException": 400,
    "accessDeniedException": 403,
    "resourceNotFoundException": 404,
    "throttlingException": 429,
    "modelStreamErrorException": 424,
    "modelTimeoutException": 408,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}


def new_id(kind: EndpointType) -> str:
    """Converse answers carry no id; clients and logs want one, so it is generated."""
    return f"{'chatcmpl' if kind == CHAT else 'cmpl'}-{uuid.uuid4().hex}"


# -- request ------------------------------------------------------------------------------


def converse_request(payload: Payload, model_id: str) -> Payload:
    messages = payload.get("messages")
    if messages is None:  # completions: the prompt is one user turn
        messages = [{"role": "user", "content": payload["prompt"]}]
    system, turns = convert_messages(messages)
    body: Payload = {"messages": turns}
    if system:
        body["system"] = system
    inference = inference_config(payload)
    if inference:
        body["inferenceConfig"] = inference
    tools = tool_config(payload, turns)
    if tools:
        body["toolConfig"] = tools
    extra = additional_fields(payload, model_id)
    if extra:
        body["additionalModelRequestFields"] = extra
    output = output_config(payload.get("response_format"))
    if output:
        body["outputConfig"] = output
    for key in PASSTHROUGH:
        if key in payload:
            body[key] = payload[key]
    return body


def convert_messages(messages: list[Payload]) -> tuple[list[Payload], list[Payload]]:
    system: list[Payload] = []
    turns: list[Payload] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": text} for text in texts(message.get("content")) if text)
            continue
        if role == "assistant":
            turn_role, blocks = "assistant", assistant_blocks(message)
        elif role == "tool":
            turn_role, blocks = "user", [tool_result(message)]
        else:
            turn_role, blocks = "user", user_blocks(message.get("content"), index)
        if turns and turns[-1]["role"] == turn_role:
            # Converse wants alternating roles: consecutive tool results (and a user turn after
            # them) become one user message, as MLflow does for tool results
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, turns


def texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if part.get("type") == "text"]
    return []


def user_blocks(content: Any, index: int) -> list[Payload]:
    if not isinstance(content, list):
        return [{"text": content if isinstance(content, str) else ""}]
    blocks: list[Payload] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(image_block(part["image_url"]["url"], index))
        elif kind == "input_audio":
            raise InvalidParameter(
                f"messages[{index}]: audio input is not supported by the Amazon Bedrock Converse API."
            )
    return blocks


def image_block(url: str, index: int) -> Payload:
    """A data URL -> an inline image block (Converse takes image bytes or S3, not web URLs)."""
    header, sep, data = url.partition(",")
    media = header[5:].split(";")[0] if header.startswith("data:") else ""
    image_format = IMAGE_FORMATS.get(media.removeprefix("image/")) if media.startswith("image/") else None
    if not sep or ";base64" not in header or image_format is None:
        raise InvalidParameter(
            f"messages[{index}]: Amazon Bedrock needs images inline as base64 data URLs "
            "(data:image/png|jpeg|gif|webp;base64,...)."
        )
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def assistant_blocks(message: Payload) -> list[Payload]:
    blocks: list[Payload] = [{"text": text} for text in texts(message.get("content")) if text]
    for call in message.get("tool_calls") or ():
        call_id = call.get("id")
        function = call.get("function") or {}
        name = function.get("name")
        if not name:
            raise InvalidParameter(
                f"Invalid assistant tool call: missing function name for tool_call_id={call_id}."
            )
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            raise InvalidParameter(
                "Invalid assistant tool call arguments: not valid JSON for "
                f"tool_call_id={call_id}, tool_name={name}."
            ) from None
        blocks.append({"toolUse": {"toolUseId": call_id, "name": name, "input": arguments}})
    return blocks or [{"text": ""}]


def tool_result(message: Payload) -> Payload:
    text = "\n".join(texts(message.get("content")))
    return {"toolResult": {"toolUseId": message.get("tool_call_id"), "content": [{"text": text}]}}


def inference_config(payload: Payload) -> Payload:
    config: Payload = {}
    max_tokens = payload.get("max_tokens") or payload.get("max_completion_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if "temperature" in payload:
        config["temperature"] = payload["temperature"]
    if "top_p" in payload:
        config["topP"] = payload["top_p"]
    if payload.get("stop"):
        stop = payload["stop"]
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    return config


def tool_config(payload: Payload, turns: list[Payload]) -> Payload | None:
    tools = [
        {"toolSpec": tool_spec(tool["function"])}
        for tool in payload.get("tools") or ()
        if tool.get("type") == "function" and tool.get("function")
    ]
    choice = payload.get("tool_choice")
    if not tools:
        return None
    if choice == "none":
        # Converse has no "none"; offering no tools is the same, unless earlier turns used
        # tools, in which case Bedrock insists on the tool list and the model decides
        has_tool_turns = any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"])
        return {"tools": tools} if has_tool_turns else None
    config: Payload = {"tools": tools}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return config


def tool_spec(function: Payload) -> Payload:
    # the parameters schema goes through as is: every JSON-Schema keyword reaches the model
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    spec: Payload = {"name": function["name"], "inputSchema": {"json": parameters}}
    if function.get("description"):
        spec["description"] = function["description"]
    if function.get("strict") is not None:
        spec["strict"] = function["strict"]
    return spec


def additional_fields(payload: Payload, model_id: str) -> Payload:
    """Model-native fields: the client's own `additionalModelRequestFields` plus top_k, whose
    name depends on the model family."""
    extra = dict(payload.get("additionalModelRequestFields") or {})
    top_k = payload.get("top_k")
    if top_k is not None:
        if "amazon.nova" in model_id:
            extra["inferenceConfig"] = {**(extra.get("inferenceConfig") or {}), "topK": top_k}
        elif "cohere." in model_id:
            extra["k"] = top_k
        else:
            extra["top_k"] = top_k
    return extra


def output_config(response_format: Any) -> Payload | None:
    """response_format -> Converse structured output (a JSON schema, passed as a string)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = json_schema_of(response_format)
        definition = {"schema": orjson.dumps(spec["schema"]).decode(), "name": spec["name"]}
        if spec.get("description"):
            definition["description"] = spec["description"]
    elif kind == "json_object":
        definition = {"schema": '{"type":"object"}', "name": "json_object"}
    else:
        return None
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}


# -- response -----------------------------------------------------------------------------


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop")


def usage(data: Any) -> Payload:
    """prompt = input + cache reads + cache writes (Bedrock counts them apart), as MLflow."""
    if not isinstance(data, dict):
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    read = data.get("cacheReadInputTokens") or 0
    write = data.get("cacheWriteInputTokens") or 0
    prompt = (data.get("inputTokens") or 0) + read + write
    completion = data.get("outputTokens") or 0
    out: Payload = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": data.get("totalTokens") or prompt + completion,
    }
    if "cacheReadInputTokens" in data:
        out["prompt_tokens_details"] = {"cached_tokens": read}
    if write:
        out["cache_creation_input_tokens"] = write
    return out


def message_parts(data: Payload) -> tuple[str | None, list[Payload] | None]:
    """Text blocks joined with a newline (as MLflow) and toolUse blocks as OpenAI tool calls."""
    content: list[str] = []
    calls: list[Payload] = []
    for block in data["output"]["message"]["content"]:
        if "text" in block:
            content.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") or {}).decode()
            calls.append(
                {
                    "id": use["toolUseId"],
                    "type": "function",
                    "function": {"name": use["name"], "arguments": arguments},
                }
            )
    return ("\n".join(content) if content else None), (calls or None)


def chat_response(data: Payload, model: str, provider: str) -> ChatResponse:
    content, calls = message_parts(data)
    return ChatResponse(
        id=new_id(CHAT),
        created=int(time.time()),
        model=model,
        choices=[
            ChatChoice(
                index=0,
                message=ChatMessageOut(role="assistant", content=content, tool_calls=calls),
                finish_reason=finish_reason(data.get("stopReason")),
            )
        ],
        usage=usage(data.get("usage")),
        provider=provider,
    )


def completions_response(data: Payload, model: str) -> CompletionsResponse:
    content, _ = message_parts(data)
    counts = usage(data.get("usage"))
    return CompletionsResponse(
        id=new_id("llm/v1/completions"),
        created=int(time.time()),
        model=model,
        choices=[
            CompletionsChoice(
                index=0, text=content or "", finish_reason=finish_reason(data.get("stopReason"))
            )
        ],
        usage={key: counts[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")},
    )


def stream_exception(headers: dict[str, str], payload: bytes) -> UpstreamError:
    """An exception message inside a ConverseStream: its status and Bedrock's message."""
    if headers.get(":message-type") == "exception":
        kind = headers.get(":exception-type", "exception")
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = {}
        message = (data.get("message") or data.get("Message")) if isinstance(data, dict) else None
        return UpstreamError(f"{kind}: {message or 'no message'}", status=EXCEPTION_STATUS.get(kind, 502))
    code = headers.get(":error-code", "error")
    return UpstreamUnavailable(f"{code}: {headers.get(':error-message', 'no message')}")


class ConverseStreamTranslator(StreamTranslator):
    """ConverseStream events -> OpenAI-style chunks: role first, text and tool-call deltas, a
    finish chunk at messageStop, then usage from metadata (after the finish, as MLflow)."""

    def __init__(self, provider: HttpProvider, kind: EndpointType) -> None:
        super().__init__(provider, kind)
        self.id = new_id(kind)
        self.created = int(time.time())
        self.model = provider.model or ""
        self.tool_index: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool call index

    def event(self, name: str, data: Any) -> list[Chunk]:
        if name == "contentBlockDelta":
            delta = data.get("delta") or {}
            if "text" in delta:
                return [self.text(delta["text"])]
            if "toolUse" in delta and self.kind == CHAT:
                index = self.tool_index.get(data.get("contentBlockIndex", 0), 0)
                call = {"index": index, "function": {"arguments": delta["toolUse"].get("input", "")}}
                return [self.chat(ChatDelta(tool_calls=[call]))]
            return []  # reasoning and citation deltas have no OpenAI counterpart
        if name == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if use is None or self.kind != CHAT:
                return []
            index = self.tool_index[data.get("contentBlockIndex", 0)] = len(self.tool_index)
            call = {
                "index": index,
                "id": use.get("toolUseId"),
                "type": "function",
                "function": {"name": use.get("name"), "arguments": ""},
            }
            return [self.chat(ChatDelta(tool_calls=[call]))]
        if name == "messageStart" and self.kind == CHAT:
            return [self.chat(ChatDelta(role=data.get("role") or "assistant"))]
        if name == "messageStop":
            return [self.finish_chunk(finish_reason(data.get("stopReason")))]
        if name == "metadata" and "usage" in data:
            return [self.usage_chunk(usage(data["usage"]))]
        return []

    def text(self, text: str) -> Chunk:
        if self.kind == CHAT:
            return self.chat(ChatDelta(content=text))
        return self.completion([CompletionsChunkChoice(index=0, finish_reason=None, text=text)])

    def finish_chunk(self, reason: str) -> Chunk:
        if self.kind == CHAT:
            return self.chat(ChatDelta(), finish=reason)
        return self.completion([CompletionsChunkChoice(index=0, finish_reason=reason, text="")])

    def usage_chunk(self, counts: Payload) -> Chunk:
        if self.kind == CHAT:
            return ChatChunk(
                id=self.id,
                created=self.created,
                model=self.model,
                choices=[],
                usage=counts,
                provider=self.provider.name,
            )
        return self.completion([], usage=counts)

    def chat(self, delta: ChatDelta, finish: str | None = None) -> ChatChunk:
        return ChatChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChatChunkChoice(index=0, finish_reason=finish, delta=delta)],
            usage=None,
            provider=self.provider.name,
        )

    def completion(
        self, choices: list[CompletionsChunkChoice], usage: Payload | None = None
    ) -> CompletionsChunk:
        return CompletionsChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )

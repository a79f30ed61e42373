"""MLflow's response shapes built from OpenAI-format data (spec §4.3-§4.8).

Shared by every provider whose upstream speaks the OpenAI wire format.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.schemas.responses import (
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatDelta,
    ChatMessageOut,
    ChatResponse,
    CompletionsChoice,
    CompletionsChunk,
    CompletionsChunkChoice,
    CompletionsResponse,
    EmbeddingItem,
    EmbeddingsResponse,
)
from gateway.types import Payload


def with_usage(options: Any) -> Payload:
    """`stream_options` as sent upstream: usage always asked for, whatever the client said, so
    every stream's usage record has the provider's counts (proxy/openai_contract.py still shows
    the usage-only chunk only to a client that asked for it)."""
    return {**(options if isinstance(options, dict) else {}), "include_usage": True}


def chat_usage(usage: Any) -> Payload:
    """prompt/completion/total first, upstream extras kept, a null prompt_tokens_details omitted."""
    if not isinstance(usage, dict):
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    out = {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "total_tokens": usage.get("total_tokens"),
    }
    for key, value in usage.items():
        if key not in out and not (key == "prompt_tokens_details" and value is None):
            out[key] = value
    return out


def chat_response(data: Payload, provider: str) -> ChatResponse:
    choices = []
    for index, choice in enumerate(data["choices"]):
        message = choice["message"]
        out = ChatMessageOut(
            role=message.get("role") or "assistant",
            content=message.get("content"),
            tool_calls=message.get("tool_calls"),
        )
        choices.append(ChatChoice(index=index, message=out, finish_reason=choice.get("finish_reason")))
    return ChatResponse(
        id=data.get("id"),
        created=data["created"],
        model=data["model"],
        choices=choices,
        usage=chat_usage(data.get("usage")),
        provider=provider,
    )


def completions_response(data: Payload) -> CompletionsResponse:
    usage = data["usage"]
    return CompletionsResponse(
        id=data.get("id"),
        created=data["created"],
        model=data["model"],
        choices=[
            CompletionsChoice(
                index=index, text=_choice_text(choice), finish_reason=choice.get("finish_reason")
            )
            for index, choice in enumerate(data["choices"])
        ],
        usage={
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
        },
    )


def _choice_text(choice: dict[str, Any]) -> str:
    message = choice.get("message")
    if isinstance(message, dict) and message.get("content") is not None:
        return str(message["content"])
    return choice.get("text") or ""


class _Vector(msgspec.Struct):
    embedding: msgspec.Raw


class _Usage(msgspec.Struct):
    prompt_tokens: int | None
    total_tokens: int | None


class _Embeddings(msgspec.Struct):
    data: list[_Vector]
    model: str
    usage: _Usage


_decode_embeddings = msgspec.json.Decoder(_Embeddings).decode


def embeddings_from_bytes(body: bytes) -> EmbeddingsResponse | None:
    """`embeddings_response` straight from the upstream's bytes, each vector kept as its JSON
    text: 1536 floats are neither made into Python objects nor printed again (about half of an
    embeddings request's CPU, benches/results/2026-12-02-profile.md). None when the body is not
    exactly that shape: the general path then decides, and reports what is wrong."""
    try:
        answer = _decode_embeddings(body)
    except msgspec.DecodeError:  # ValidationError included
        return None
    usage = answer.usage
    return EmbeddingsResponse(
        data=[EmbeddingItem(embedding=item.embedding, index=index) for index, item in enumerate(answer.data)],
        model=answer.model,
        usage={"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
    )


def embeddings_response(data: Payload) -> EmbeddingsResponse:
    usage = data["usage"]
    return EmbeddingsResponse(
        data=[
            EmbeddingItem(embedding=item["embedding"], index=index) for index, item in enumerate(data["data"])
        ],
        model=data["model"],
        usage={"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["total_tokens"]},
    )


def chat_chunk(data: Payload, provider: str) -> ChatChunk:
    choices = []
    for choice in data.get("choices") or ():
        delta = choice.get("delta") or {}
        calls = delta.get("tool_calls")
        choices.append(
            ChatChunkChoice(
                index=choice.get("index", 0),
                finish_reason=choice.get("finish_reason"),
                delta=ChatDelta(
                    role=delta.get("role"),
                    content=delta.get("content"),
                    tool_calls=[_tool_call_delta(call) for call in calls] if calls else None,
                ),
            )
        )
    return ChatChunk(
        id=data.get("id"),
        created=data.get("created"),
        model=data.get("model"),
        choices=choices,
        usage=data.get("usage"),
        provider=provider,
    )


def _tool_call_delta(call: dict[str, Any]) -> Payload:
    function = call.get("function") or {}
    return {
        "index": call.get("index", 0),
        "id": call.get("id"),
        "type": call.get("type"),
        "function": {"name": function.get("name"), "arguments": function.get("arguments")},
    }


def completions_chunk(data: Payload) -> CompletionsChunk:
    """Reads `text` (OpenAI's real completions stream), falling back to a chat-style delta."""
    choices = []
    for choice in data.get("choices") or ():
        text = choice.get("text")
        if text is None:
            text = (choice.get("delta") or {}).get("content")
        choices.append(
            CompletionsChunkChoice(
                index=choice.get("index", 0), finish_reason=choice.get("finish_reason"), text=text
            )
        )
    return CompletionsChunk(
        id=data.get("id"),
        created=data.get("created"),
        model=data.get("model"),
        choices=choices,
        usage=data.get("usage"),
    )

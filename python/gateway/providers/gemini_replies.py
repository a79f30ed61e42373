"""Gemini `generateContent` answers -> the standard responses and stream chunks (spec §7.9).

Shared by the `gemini` provider and Gemini models on Vertex AI. Unlike MLflow (spec §12 item
13), a candidate with empty text is kept (`content: ""`) instead of being dropped, so `choices`
is never silently empty; `thought` parts (the model's reasoning) are not part of the answer; and
streams (completions too) report the usage once, in a final `choices: []` chunk, where MLflow
repeats Gemini's running count on every chunk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from typing import Any

from gateway.errors import UpstreamError
from gateway.providers.base import StreamTranslator
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
    EmbeddingItem,
    EmbeddingsResponse,
)
from gateway.types import CHAT, Payload

FILTERED = frozenset(
    (
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "ESCALATION",
    )
)
USAGE_MAPPED = ("promptTokenCount", "candidatesTokenCount", "totalTokenCount", "cachedContentTokenCount")
COMPLETIONS_CHUNK = "text_completion.chunk"  # MLflow's spelling for Gemini streams (spec §4.8)


def finish_reason(raw: Any) -> str | None:
    if not raw:
        return None
    if raw == "MAX_TOKENS":
        return "length"
    if raw in FILTERED:
        return "content_filter"
    return str(raw).lower()


def usage(metadata: Any) -> Payload:
    """prompt, completion (candidates + thoughts) and total first; other usageMetadata keys
    kept; cached content as prompt_tokens_details.cached_tokens."""
    if not isinstance(metadata, dict):
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    candidates, thoughts = metadata.get("candidatesTokenCount"), metadata.get("thoughtsTokenCount")
    completion = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    out: Payload = {
        "prompt_tokens": metadata.get("promptTokenCount"),
        "completion_tokens": completion,
        "total_tokens": metadata.get("totalTokenCount"),
    }
    out.update((key, value) for key, value in metadata.items() if key not in USAGE_MAPPED)
    if "cachedContentTokenCount" in metadata:
        out["prompt_tokens_details"] = {"cached_tokens": metadata["cachedContentTokenCount"]}
    return out


def _parts(candidate: Payload) -> list[Payload]:
    content = candidate.get("content") or {}
    return [part for part in content.get("parts") or () if not part.get("thought")]


def _text(parts: list[Payload]) -> str | None:
    texts = [part["text"] for part in parts if isinstance(part.get("text"), str)]
    return "".join(texts) if texts else None


def tool_call(part: Payload) -> Payload:
    """A functionCall part as an OpenAI tool call; Gemini may omit the id, so MLflow's stable
    `call_` + md5(name/arguments) stands in."""
    call = part["functionCall"]
    name = call["name"]
    arguments = json.dumps(call.get("args") or {})
    call_id = (
        call.get("id")
        or "call_" + hashlib.md5(f"{name}/{arguments}".encode(), usedforsecurity=False).hexdigest()
    )
    out: Payload = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    signature = part.get("thoughtSignature") or part.get("thought_signature") or call.get("thoughtSignature")
    if signature:
        out["thought_signature"] = signature
    return out


def _candidates(data: Payload) -> list[tuple[str | None, list[Payload], str | None]]:
    """(text, tool calls, finish_reason) per candidate; a blocked prompt is one filtered choice."""
    candidates = data.get("candidates")
    if not candidates:
        if (data.get("promptFeedback") or {}).get("blockReason"):
            return [(None, [], "content_filter")]
        return []
    out: list[tuple[str | None, list[Payload], str | None]] = []
    for candidate in candidates:
        parts = _parts(candidate)
        calls = [tool_call(part) for part in parts if part.get("functionCall")]
        reason = finish_reason(candidate.get("finishReason")) or "stop"
        if calls and reason == "stop":
            reason = "tool_calls"
        text = _text(parts)
        if text is None and not calls and reason != "content_filter":
            text = ""  # kept, not dropped as MLflow does
        out.append((text, calls, reason))
    return out


def chat_response(data: Payload, model: str, provider: str) -> ChatResponse:
    now = int(time.time())
    choices = [
        ChatChoice(
            index=index,
            message=ChatMessageOut(role="assistant", content=text, tool_calls=calls or None),
            finish_reason=reason,
        )
        for index, (text, calls, reason) in enumerate(_candidates(data))
    ]
    return ChatResponse(
        id=f"gemini-chat-{now}",
        created=now,
        model=model,
        choices=choices,
        usage=usage(data.get("usageMetadata")),
        provider=provider,
    )


def completions_response(data: Payload, model: str) -> CompletionsResponse:
    counted = usage(data.get("usageMetadata"))
    return CompletionsResponse(
        id=None,
        created=int(time.time()),
        model=model,
        choices=[
            CompletionsChoice(index=index, text=text or "", finish_reason=reason)
            for index, (text, _, reason) in enumerate(_candidates(data))
        ],
        usage={key: counted[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")},
    )


def embeddings_response(vectors: list[list[float]], model: str, usage: Payload) -> EmbeddingsResponse:
    return EmbeddingsResponse(
        data=[EmbeddingItem(embedding=vector, index=index) for index, vector in enumerate(vectors)],
        model=model,
        usage=usage,
    )


def as_base64(response: EmbeddingsResponse) -> EmbeddingsResponse:
    """OpenAI's `encoding_format: base64` (the openai SDK's default): little-endian float32."""
    for item in response.data:
        vector = item.embedding
        if isinstance(vector, list):
            item.embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return response


class GeminiStreamTranslator(StreamTranslator):
    """generateContent stream events -> chunks. Function calls arrive whole; their indexes
    continue across events per candidate, and a final STOP after tool calls is `tool_calls`.

    Gemini repeats a growing usageMetadata on every event; it is sent once, as OpenAI's final
    `choices: []` usage chunk, so clients that add up usage per chunk (LangChain) count it once.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.created = int(time.time())
        word = "chat" if self.kind == CHAT else "completions"
        self.id = f"gemini-{word}-stream-{self.created}"
        self.calls_seen: dict[int, int] = {}  # candidate index -> tool calls emitted so far
        self.usage_metadata: Payload | None = None

    def event(self, name: str, data: Any) -> list[Chunk]:
        if "error" in data:
            error = data["error"] if isinstance(data["error"], dict) else {"message": data["error"]}
            code = error.get("code")
            raise UpstreamError(
                f"Gemini returned {error.get('status') or code} while streaming: {error.get('message')}",
                status=code if isinstance(code, int) and 400 <= code < 600 else 502,
            )
        if data.get("usageMetadata"):
            self.usage_metadata = data["usageMetadata"]
        candidates = stream_candidates(data)
        if not candidates:
            return []
        if self.kind == CHAT:
            return [self.chat_chunk(self.chat_choices(candidates))]
        return [self.completions_chunk(completions_choices(candidates))]

    def finish(self) -> list[Chunk]:
        if self.usage_metadata is None:
            return []
        counted = usage(self.usage_metadata)
        if self.kind == CHAT:
            return [self.chat_chunk([], counted)]
        totals = {key: counted[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return [self.completions_chunk([], totals)]

    def chat_choices(self, candidates: list[Payload]) -> list[ChatChunkChoice]:
        choices = []
        for position, candidate in enumerate(candidates):
            index = candidate.get("index", position)
            parts = _parts(candidate)
            calls = []
            for part in parts:
                if part.get("functionCall"):
                    call = {"index": self.calls_seen.get(index, 0), **tool_call(part)}
                    self.calls_seen[index] = call["index"] + 1
                    calls.append(call)
            reason = finish_reason(candidate.get("finishReason"))
            if reason == "stop" and self.calls_seen.get(index):
                reason = "tool_calls"
            delta = ChatDelta(role="assistant", content=_text(parts), tool_calls=calls or None)
            choices.append(ChatChunkChoice(index=index, finish_reason=reason, delta=delta))
        return choices

    def chat_chunk(self, choices: list[ChatChunkChoice], counted: Payload | None = None) -> ChatChunk:
        return ChatChunk(
            id=self.id,
            created=self.created,
            model=self.provider.model,
            choices=choices,
            usage=counted,
            provider=self.provider.name,
        )

    def completions_chunk(
        self, choices: list[CompletionsChunkChoice], totals: Payload | None = None
    ) -> CompletionsChunk:
        return CompletionsChunk(
            id=self.id,
            object=COMPLETIONS_CHUNK,
            created=self.created,
            model=self.provider.model,
            choices=choices,
            usage=totals,
        )


def completions_choices(candidates: list[Payload]) -> list[CompletionsChunkChoice]:
    return [
        CompletionsChunkChoice(
            index=candidate.get("index", position),
            finish_reason=finish_reason(candidate.get("finishReason")),
            text=_text(_parts(candidate)),
        )
        for position, candidate in enumerate(candidates)
    ]


def stream_candidates(data: Payload) -> list[Payload]:
    candidates = data.get("candidates")
    if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
        return [{"finishReason": "SAFETY"}]  # a blocked prompt ends the stream filtered
    return list(candidates or ())

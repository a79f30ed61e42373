"""Chat Completions answers as Gemini `GenerateContentResponse`s, whole and streamed.

A stream is framed as Gemini frames it: server-sent events (`data: {...}` + CRLF CRLF) when the
client asked `alt=sse` (the SDKs and Gemini CLI do), else one JSON array written piece by piece.
Text deltas go out as they arrive; function calls once their arguments are complete, with the
finish reason and `usageMetadata` in the last response.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from gateway.apis.chat_chunks import ChatChunkWriter
from gateway.schemas.responses import ChatResponse
from gateway.types import Payload

FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


def usage_metadata(usage: Any) -> Payload | None:
    """Chat usage -> Gemini usageMetadata (cached and reasoning counts where reported)."""
    if not isinstance(usage, dict) or usage.get("prompt_tokens") is None:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    out: Payload = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - reasoning,
        "totalTokenCount": usage.get("total_tokens") or prompt + completion,
    }
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached:
        out["cachedContentTokenCount"] = cached
    if reasoning:
        out["thoughtsTokenCount"] = reasoning
    return out


def call_part(call: Payload) -> Payload:
    function = call.get("function") or {}
    try:
        args = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = {"arguments": function.get("arguments")}
    part: Payload = {"functionCall": {"name": function.get("name") or "", "args": args}}
    if call.get("id"):
        part["functionCall"]["id"] = call["id"]
    return part


def _text(content: Any) -> str | None:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict)) or None
    return content if isinstance(content, str) and content else None


def generate_content_response(response: ChatResponse, model: str) -> Payload:
    candidates = []
    for choice in response.choices:
        message = choice.message
        parts: list[Payload] = []
        text = _text(message.content)
        if text:
            parts.append({"text": text})
        parts.extend(call_part(call) for call in message.tool_calls or ())
        candidate: Payload = {"content": {"role": "model", "parts": parts}, "index": choice.index}
        candidate["finishReason"] = FINISH.get(choice.finish_reason or "stop", "OTHER")
        candidates.append(candidate)
    out: Payload = {"candidates": candidates}
    metadata = usage_metadata(response.usage)
    if metadata is not None:
        out["usageMetadata"] = metadata
    out["modelVersion"] = model
    out["responseId"] = response.id or uuid.uuid4().hex
    return out


class GeminiStreamWriter(ChatChunkWriter):
    """Chat chunks in, Gemini stream bytes out."""

    def __init__(self, model: str, sse: bool) -> None:
        super().__init__()
        self.model = model
        self.sse = sse
        self.response_id = uuid.uuid4().hex
        self.started = False
        self.calls: dict[int, Payload] = {}  # tool calls being assembled, by their Chat index
        self.chars = 0

    def frame(self, data: Payload) -> bytes:
        encoded = orjson.dumps(data)
        if self.sse:
            return b"data: " + encoded + b"\r\n\r\n"
        head = b"," if self.started else b"["
        self.started = True
        return head + encoded + b"\r\n"

    def _response(self, parts: list[Payload], finish: str | None = None) -> Payload:
        candidate: Payload = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "modelVersion": self.model, "responseId": self.response_id}

    def text(self, text: str) -> bytes:
        self.chars += len(text)
        return self.frame(self._response([{"text": text}]))

    def call(self, call: Payload) -> bytes:
        self._assemble(call)  # sent whole, in the last chunk
        return b""

    def _assemble(self, delta: Payload) -> None:
        call = self.calls.setdefault(delta.get("index", 0), {"function": {"arguments": ""}})
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]

    def finish_bytes(self) -> bytes:
        parts = [call_part(self.calls[index]) for index in sorted(self.calls)] or [{"text": ""}]
        last = self._response(parts, FINISH.get(self.finish or "stop", "OTHER"))
        metadata = usage_metadata(self.usage)
        if metadata is not None:
            last["usageMetadata"] = metadata
        out = self.frame(last)
        return out if self.sse else out + b"]"

    def error(self, body: bytes) -> bytes:
        """Gemini's error object as the stream's last item."""
        if self.sse:
            return b"data: " + body + b"\r\n\r\n"
        return (b"," if self.started else b"[") + body + b"]"

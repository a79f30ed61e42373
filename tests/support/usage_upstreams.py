"""One emulated upstream speaking four provider families' chat APIs, each reporting usage the
test chooses (cache reads and writes, reasoning), in the provider's own wire shape and with
the provider's own counting rules:

  OpenAI     POST /v1/chat/completions: `prompt_tokens` includes the cached tokens
             (`prompt_tokens_details.cached_tokens`), `completion_tokens` the reasoning ones;
             streams end with a `choices: []` usage chunk only when `include_usage` is asked.
  Anthropic  POST /v1/messages: `input_tokens` excludes `cache_read_input_tokens` and
             `cache_creation_input_tokens`; streams report input and cache counts in
             `message_start`, the final `output_tokens` in `message_delta`.
  Gemini     POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse:
             `promptTokenCount` includes `cachedContentTokenCount`; `thoughtsTokenCount` is
             beside `candidatesTokenCount` (both billed as output); streams repeat a growing
             `usageMetadata` on every event.
  Bedrock    POST /model/{model}/converse and /converse-stream: `inputTokens` excludes
             `cacheReadInputTokens` and `cacheWriteInputTokens`; the stream is AWS event-stream
             frames (the encoder of tests/providers/bedrock_upstream.py) ending in `metadata`.

Authentication is not checked here: the provider tests do that; this one is about counting.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.providers.bedrock_upstream import event as bedrock_event
from tests.support.recording import RecordingUpstream

WORDS = ["Cached", " answers", " are", " cheaper"]


@dataclass(frozen=True)
class Usage:
    """What one answer cost the provider, in plain parts: input not touching the cache, input
    read from it, input written to it, visible output and reasoning output."""

    fresh: int
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0


def _sse(data: Any, name: str | None = None) -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {orjson.dumps(data).decode()}\n\n".encode()


class UsageUpstream(RecordingUpstream):
    """`usage[(family, stream)]` is what each family reports for a plain or a streamed answer."""

    def __init__(self, usage: dict[tuple[str, bool], Usage]) -> None:
        super().__init__()
        self.usage = usage

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.openai)
        app.router.add_post("/v1/messages", self.anthropic)
        app.router.add_post("/v1beta/models/{model}:{method}", self.gemini)
        app.router.add_post("/model/{model}/{operation:converse|converse-stream}", self.bedrock)

    async def _events(
        self, request: web.Request, content_type: str, frames: list[bytes]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for frame in frames:
            await response.write(frame)
        await response.write_eof()
        return response

    # -- OpenAI -------------------------------------------------------------------------------
    async def openai(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        stream = bool(body.get("stream"))
        spent = self.usage[("openai", stream)]
        usage = {
            "prompt_tokens": spent.fresh + spent.cache_read,
            "completion_tokens": spent.output + spent.reasoning,
            "total_tokens": spent.fresh + spent.cache_read + spent.output + spent.reasoning,
            "prompt_tokens_details": {"cached_tokens": spent.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": spent.reasoning, "audio_tokens": 0},
        }
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "created": 1_700_000_000, "model": body["model"]}
        if not stream:
            message = {"role": "assistant", "content": "".join(WORDS), "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            return web.json_response(
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk = {**head, "object": "chat.completion.chunk"}
        deltas = [{"role": "assistant", "content": ""}, *({"content": word} for word in WORDS), {}]
        frames = []
        for position, delta in enumerate(deltas):
            finish = "stop" if position == len(deltas) - 1 else None
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            frames.append(_sse({**chunk, "choices": [choice], **({"usage": None} if with_usage else {})}))
        if with_usage:
            frames.append(_sse({**chunk, "choices": [], "usage": usage}))
        frames.append(b"data: [DONE]\n\n")
        return await self._events(request, "text/event-stream", frames)

    # -- Anthropic ------------------------------------------------------------------------------
    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        stream = bool(body.get("stream"))
        spent = self.usage[("anthropic", stream)]
        usage = {
            "input_tokens": spent.fresh,
            "cache_creation_input_tokens": spent.cache_write,
            "cache_read_input_tokens": spent.cache_read,
            "output_tokens": spent.output,
        }
        message = {
            "id": f"msg_{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "".join(WORDS)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not stream:
            return web.json_response(message)
        started = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        frames = [
            _sse({"type": "message_start", "message": started}, "message_start"),
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
            *(
                _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word},
                    },
                    "content_block_delta",
                )
                for word in WORDS
            ),
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": spent.output},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return await self._events(request, "text/event-stream", frames)

    # -- Gemini ---------------------------------------------------------------------------------
    async def gemini(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        model, method = request.match_info["model"], request.match_info["method"]
        stream = method == "streamGenerateContent"
        spent = self.usage[("gemini", stream)]
        prompt = spent.fresh + spent.cache_read
        metadata = {
            "promptTokenCount": prompt,
            "cachedContentTokenCount": spent.cache_read,
            "candidatesTokenCount": spent.output,
            "thoughtsTokenCount": spent.reasoning,
            "totalTokenCount": prompt + spent.output + spent.reasoning,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": spent.cache_read}],
        }

        def answer(text: str, finish: bool, usage: dict[str, Any]) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if finish:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": f"{model}-001"}

        if not stream:
            return web.json_response(answer("".join(WORDS), True, metadata))
        frames = []
        for position, word in enumerate(WORDS):
            last = position == len(WORDS) - 1
            # a growing count on every event, the whole one on the last (Gemini's way)
            partial = {"promptTokenCount": prompt, "totalTokenCount": prompt + position}
            frames.append(
                _sse(answer(word, last, metadata if last else partial)).replace(b"\n\n", b"\r\n\r\n")
            )
        return await self._events(request, "text/event-stream", frames)

    # -- Bedrock --------------------------------------------------------------------------------
    async def bedrock(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        stream = request.match_info["operation"] == "converse-stream"
        spent = self.usage[("bedrock", stream)]
        usage = {
            "inputTokens": spent.fresh,
            "outputTokens": spent.output,
            "totalTokens": spent.fresh + spent.cache_read + spent.cache_write + spent.output,
            "cacheReadInputTokens": spent.cache_read,
            "cacheWriteInputTokens": spent.cache_write,
        }
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        if not stream:
            answer = {
                "output": {"message": {"role": "assistant", "content": [{"text": "".join(WORDS)}]}},
                "stopReason": "end_turn",
                "usage": usage,
                "metrics": {"latencyMs": 42},
            }
            return web.json_response(answer, headers=headers)
        frames = [
            bedrock_event("messageStart", {"role": "assistant"}),
            *(
                bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}})
                for w in WORDS
            ),
            bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
            bedrock_event("messageStop", {"stopReason": "end_turn"}),
            bedrock_event("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}),
        ]
        return await self._events(request, "application/vnd.amazon.eventstream", frames)

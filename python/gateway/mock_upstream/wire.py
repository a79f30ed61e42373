"""Pre-rendered wire formats of the mock upstream: OpenAI (chat, completions, embeddings,
models, SSE with `include_usage`) and Anthropic's Messages API (JSON and SSE).

Everything is rendered once at start-up into HTTP/1.1 bytes, so serving a request costs a
header scan and a `transport.write`. Streams are lists of HTTP chunks (one SSE event each for
OpenAI) so a chunk delay can pace them.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

CREATED = 1730000000
CHAT_MODEL = "gpt-4o-mini-2024-07-18"
COMPLETIONS_MODEL = "gpt-3.5-turbo-instruct"
EMBEDDINGS_MODEL = "text-embedding-3-small"
ANTHROPIC_MODEL = "claude-3-5-sonnet-20241022"
ANSWER = (
    "Sure. Here is a short answer to your question: the gateway forwards your request "
    "to the configured provider, applies rate limits and returns the provider's answer "
    "in the OpenAI response format, including token usage for accounting."
)
PROMPT_TOKENS = 25
ANSWER_TOKENS = 42
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
CHUNKED_END = b"0\r\n\r\n"


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Overloaded" if status == 529 else b"Error"


def response(
    status: int, body: bytes, content_type: bytes = b"application/json", close: bool = False
) -> bytes:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (
        status,
        reason(status),
        content_type,
        len(body),
    )
    return head + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(value: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n".encode() if event else b""
    return prefix + b"data: " + _json(value) + b"\n\n"


def embedding_vector(dim: int) -> list[float]:
    """Deterministic pseudo-random floats with OpenAI-like magnitude and precision."""
    values, x = [], 12345
    for _ in range(dim):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        values.append(round((x / 0x7FFFFFFF - 0.5) * 0.2, 8))
    return values


def _openai_error(status: int) -> bytes:
    kind, code = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("invalid_request_error", None),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }.get(status, ("server_error", None))
    message = f"Injected error {status} from the mock upstream."
    return _json({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _anthropic_error(status: int) -> bytes:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    message = f"Injected error {status} from the mock upstream."
    return _json({"type": "error", "error": {"type": kind, "message": message}})


@dataclass
class Replies:
    """Every reply of the mock, as HTTP/1.1 bytes. Built once from the CLI options."""

    chunks: int
    embed_dim: int
    error_status: int = 500
    chat: bytes = b""
    completion: bytes = b""
    models: bytes = b""
    messages: bytes = b""
    not_found: bytes = b""
    health: bytes = b""
    openai_error: bytes = b""
    anthropic_error: bytes = b""
    chat_stream: list[bytes] = field(default_factory=list)
    completion_stream: list[bytes] = field(default_factory=list)
    messages_stream: list[bytes] = field(default_factory=list)
    chat_usage: bytes = b""
    completion_usage: bytes = b""
    done: bytes = b""
    _embedding_float: list[Any] = field(default_factory=list)
    _embedding_base64: str = ""
    _embeddings: dict[tuple[int, bool], bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._render_openai()
        self._render_anthropic()
        self.not_found = response(
            404, _json({"error": {"message": "Not found", "type": "invalid_request_error", "code": None}})
        )
        self.health = response(200, b"ok", b"text/plain")
        self.openai_error = response(self.error_status, _openai_error(self.error_status))
        self.anthropic_error = response(self.error_status, _anthropic_error(self.error_status))

    def embeddings(self, count: int, base64_format: bool) -> bytes:
        """One embedding per input; rendered on first use for each (count, format)."""
        key = (count, base64_format)
        cached = self._embeddings.get(key)
        if cached is None:
            vector: Any = self._embedding_base64 if base64_format else self._embedding_float
            body = {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)],
                "model": EMBEDDINGS_MODEL,
                "usage": {"prompt_tokens": 8 * count, "total_tokens": 8 * count},
            }
            cached = response(200, _json(body))
            if len(self._embeddings) < 256:
                self._embeddings[key] = cached
        return cached

    def _render_openai(self) -> None:
        total = PROMPT_TOKENS + ANSWER_TOKENS
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": ANSWER_TOKENS, "total_tokens": total}
        self.chat = response(
            200,
            _json(
                {
                    "id": "chatcmpl-mock0123456789abcdef",
                    "object": "chat.completion",
                    "created": CREATED,
                    "model": CHAT_MODEL,
                    "system_fingerprint": "fp_mock",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            ),
        )
        self.completion = response(
            200,
            _json(
                {
                    "id": "cmpl-mock0123456789abcdef",
                    "object": "text_completion",
                    "created": CREATED,
                    "model": COMPLETIONS_MODEL,
                    "choices": [{"text": ANSWER, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                    "usage": usage,
                }
            ),
        )
        self.models = response(
            200,
            _json(
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": CREATED, "owned_by": "mock"}
                        for name in (CHAT_MODEL, COMPLETIONS_MODEL, EMBEDDINGS_MODEL, ANTHROPIC_MODEL)
                    ],
                }
            ),
        )
        vector = embedding_vector(self.embed_dim)
        self._embedding_float = vector
        self._embedding_base64 = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        self._render_openai_streams()

    def _render_openai_streams(self) -> None:
        # chunk 0 carries the role, the last one the finish reason, the rest one word each
        words = ANSWER.split(" ")
        n = self.chunks
        chat_head: dict[str, Any] = {"id": "chatcmpl-mock0123456789abcdef", "object": "chat.completion.chunk"}
        chat_head |= {"created": CREATED, "model": CHAT_MODEL, "system_fingerprint": "fp_mock"}
        comp_head: dict[str, Any] = {"id": "cmpl-mock0123456789abcdef", "object": "text_completion"}
        comp_head |= {"created": CREATED, "model": COMPLETIONS_MODEL}
        for i in range(n):
            last = i == n - 1
            word = "" if last or i == 0 else words[(i - 1) % len(words)] + " "
            delta: dict[str, Any] = {"content": word}
            if i == 0:
                delta = {"role": "assistant", "content": "", "refusal": None}
            choice = {"index": 0, "delta": {} if last else delta, "logprobs": None}
            choice["finish_reason"] = "stop" if last else None
            self.chat_stream.append(http_chunk(sse({**chat_head, "choices": [choice]})))
            text_choice = {
                "text": word,
                "index": 0,
                "logprobs": None,
                "finish_reason": "stop" if last else None,
            }
            self.completion_stream.append(http_chunk(sse({**comp_head, "choices": [text_choice]})))
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n, "total_tokens": PROMPT_TOKENS + n}
        self.chat_usage = http_chunk(sse({**chat_head, "choices": [], "usage": usage}))
        self.completion_usage = http_chunk(sse({**comp_head, "choices": [], "usage": usage}))
        self.done = http_chunk(b"data: [DONE]\n\n") + CHUNKED_END

    def _render_anthropic(self) -> None:
        message_id = "msg_mock0123456789abcdef"
        self.messages = response(
            200,
            _json(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": ANTHROPIC_MODEL,
                    "content": [{"type": "text", "text": ANSWER}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": ANSWER_TOKENS},
                }
            ),
        )
        words = ANSWER.split(" ")
        start = {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": ANTHROPIC_MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
            },
        }
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        opening = sse(start, "message_start") + sse(block, "content_block_start")
        opening += sse({"type": "ping"}, "ping")
        self.messages_stream = [http_chunk(opening)]
        for i in range(self.chunks):
            text = words[i % len(words)] + " "
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
            self.messages_stream.append(http_chunk(sse(delta, "content_block_delta")))
        closing = sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        closing += sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": self.chunks},
            },
            "message_delta",
        )
        closing += sse({"type": "message_stop"}, "message_stop")
        self.messages_stream.append(http_chunk(closing) + CHUNKED_END)

"""What a limit needs to know about one request: whose counter it charges and how many model
tokens it will likely use, and how many it did use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.schemas.responses import Chunk
from gateway.types import CHAT, COMPLETIONS, EndpointType, Payload, Scope

CONSUMER_HEADER = b"x-gateway-consumer"
CONSUMER_SCOPE_KEY = "gateway.consumer"  # set by the pipeline's authenticate phase
# a rough, provider-neutral tokenizer: about four characters per token, plus a few tokens of
# framing per chat message; the estimate is reconciled with the reported usage afterwards
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def client_key(scope: Scope, kind: str, header: bytes | None = None) -> str:
    """The identity a per-client counter is kept for. Never stored raw: the stores hash it.

    ip: the peer address as the ASGI server sees it (MLflow's key; proxies' X-Forwarded-For is
    not trusted). consumer: the authenticated consumer (a gateway key's id, a JWT's subject),
    else the X-Gateway-Consumer header, else the Authorization bearer token, else the address.
    header: that request header, else the address.
    """
    if kind == "consumer":
        authenticated = scope.get(CONSUMER_SCOPE_KEY)
        if authenticated is not None:
            return "key:" + str(authenticated.id)
        consumer = _header(scope, CONSUMER_HEADER)
        if consumer:
            return "consumer:" + consumer
        authorization = _header(scope, b"authorization")
        if authorization and authorization[:7].lower() == "bearer " and authorization[7:].strip():
            return "bearer:" + authorization[7:].strip()
    elif kind == "header" and header is not None:
        value = _header(scope, header)
        if value:
            return "header:" + value
    client = scope.get("client")
    return "ip:" + (str(client[0]) if client else "unknown")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1")).strip()
    return None


def estimate_tokens(kind: EndpointType, payload: Payload) -> tuple[int, int]:
    """(prompt estimate, completion allowance) before the call: the prompt from its size, the
    completion from max_tokens (times n choices)."""
    if kind == CHAT:
        messages = payload.get("messages") or ()
        chars = sum(_text_size(m.get("content")) for m in messages if isinstance(m, dict))
        prompt = _tokens(chars) + TOKENS_PER_MESSAGE * len(messages)
    elif kind == COMPLETIONS:
        prompt = _tokens(_text_size(payload.get("prompt")))
    else:
        prompt = _tokens(_text_size(payload.get("input")))
        return prompt, 0
    limit = payload.get("max_tokens")
    if limit is None:
        limit = payload.get("max_completion_tokens")
    choices = payload.get("n")
    completion = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 0
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        completion *= choices
    return prompt, completion


def _tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def _text_size(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, int):
                total += CHARS_PER_TOKEN  # a pre-tokenized prompt: one token each
            elif isinstance(part, dict):
                total += _text_size(part.get("text"))
            elif isinstance(part, list):
                total += _text_size(part)
        return total
    return 0


def reported_tokens(usage: Any) -> int | None:
    """Total tokens from an OpenAI-style usage object, if the provider reported any."""
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    parts = [usage.get(k) for k in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")]
    numbers = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    return sum(numbers) if numbers else None


def streamed_chars(batch: Iterable[Chunk]) -> int:
    """Characters of generated text in a batch of stream chunks (a fallback when no usage comes)."""
    total = 0
    for chunk in batch:
        for choice in chunk.choices:
            text = getattr(choice, "text", None)
            if text is None:
                delta = getattr(choice, "delta", None)
                text = getattr(delta, "content", None)
            if isinstance(text, str):
                total += len(text)
    return total

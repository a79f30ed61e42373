"""Token counts from the usage object every provider's answer carries in OpenAI's shape (the
providers translate theirs): input (cached reads and cache writes included), output (reasoning
included), and the parts prices tell apart."""

from __future__ import annotations

from typing import Any

import msgspec

CHARS_PER_TOKEN = 4  # the estimate for answers without usage, as the limits use


class Tokens(msgspec.Struct, frozen=True):
    prompt: int = 0
    completion: int = 0
    cached: int = 0  # input read from the provider's prompt cache
    cache_write: int = 0  # input written to the provider's prompt cache
    reasoning: int = 0
    total: int = 0
    estimated: bool = False
    cache_write_1h: int = 0  # the part of cache_write kept an hour (Anthropic: a higher price)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tokens_from(usage: Any) -> Tokens | None:
    """The counts in a usage dict in OpenAI's shape: `prompt_tokens` (every input token),
    `completion_tokens` (reasoning included), `prompt_tokens_details.cached_tokens` (cache
    reads), `cache_creation_input_tokens` (cache writes: the Anthropic and Bedrock providers keep
    it beside the counts), `completion_tokens_details.reasoning_tokens` or Gemini's
    `thoughtsTokenCount`. None when the answer reported no usage: no counts, or only zeros
    (some upstreams send zeros for "unknown"; a real answer always has a prompt)."""
    if not isinstance(usage, dict):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    if not prompt and not completion and not _count(usage.get("total_tokens")):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = usage.get("completion_tokens_details")
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    cached = _count(prompt_details.get("cached_tokens"))
    cache_write = _count(usage.get("cache_creation_input_tokens")) or _count(
        prompt_details.get("cache_write_tokens")
    )
    reasoning = _count(completion_details.get("reasoning_tokens")) or _count(usage.get("thoughtsTokenCount"))
    total = _count(usage.get("total_tokens")) or prompt + completion
    creation = usage.get("cache_creation")  # Anthropic: the writes by time to live
    long_lived = _count(creation.get("ephemeral_1h_input_tokens")) if isinstance(creation, dict) else 0
    return Tokens(
        prompt, completion, cached, cache_write, reasoning, total, cache_write_1h=min(long_lived, cache_write)
    )


def estimated(prompt_chars: int, completion_chars: int) -> Tokens:
    prompt = -(-prompt_chars // CHARS_PER_TOKEN)
    completion = -(-completion_chars // CHARS_PER_TOKEN)
    return Tokens(prompt=prompt, completion=completion, total=prompt + completion, estimated=True)


def answer_text_length(response: Any) -> int:
    """The generated text's length in a whole answer (chat or completions; 0 for embeddings)."""
    total = 0
    for choice in getattr(response, "choices", ()):
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) if message is not None else getattr(choice, "text", None)
        if isinstance(text, str):
            total += len(text)
    return total

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
    # `type(...) is int`: a bool is not a count; called a dozen times per request, so kept lean
    return value if type(value) is int and value > 0 else 0


def tokens_from(usage: Any) -> Tokens | None:
    """The counts in a usage dict in OpenAI's shape: `prompt_tokens` (every input token),
    `completion_tokens` (reasoning included), `prompt_tokens_details.cached_tokens` (cache
    reads), `cache_creation_input_tokens` (cache writes: the Anthropic and Bedrock providers keep
    it beside the counts), `completion_tokens_details.reasoning_tokens` or Gemini's
    `thoughtsTokenCount`. None when the answer reported no usage: no counts, or only zeros
    (some upstreams send zeros for "unknown"; a real answer always has a prompt)."""
    if type(usage) is not dict:
        return None
    get = usage.get
    prompt = _count(get("prompt_tokens"))
    completion = _count(get("completion_tokens"))
    total = _count(get("total_tokens"))
    if not prompt and not completion and not total:
        return None
    cached = cache_write = reasoning = long_lived = 0
    prompt_details = get("prompt_tokens_details")
    if type(prompt_details) is dict:
        cached = _count(prompt_details.get("cached_tokens"))
        cache_write = _count(prompt_details.get("cache_write_tokens"))
    cache_write = _count(get("cache_creation_input_tokens")) or cache_write
    completion_details = get("completion_tokens_details")
    if type(completion_details) is dict:
        reasoning = _count(completion_details.get("reasoning_tokens"))
    reasoning = reasoning or _count(get("thoughtsTokenCount"))
    creation = get("cache_creation")  # Anthropic: the writes by time to live
    if type(creation) is dict:
        long_lived = min(_count(creation.get("ephemeral_1h_input_tokens")), cache_write)
    return Tokens(
        prompt, completion, cached, cache_write, reasoning, total or prompt + completion, False, long_lived
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

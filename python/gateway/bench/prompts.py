"""Built-in realistic request bodies: prompts of a chosen size (in approximate tokens) made of
ordinary English sentences, in several variants so a target cannot serve one cached answer."""

from __future__ import annotations

import random
from typing import Any

SIZES = {"tiny": 16, "small": 128, "medium": 512, "large": 2048, "xl": 8192}
WORDS_PER_TOKEN = 0.75  # English text in common BPE vocabularies

SYSTEM = "You are a helpful assistant. Answer precisely and keep the answer short."
QUESTIONS = [
    "Summarise the text above in three sentences.",
    "List the main risks described above and how to reduce each one.",
    "Explain the text above to a new engineer on the team.",
    "Which parts of the text above would you test first, and why?",
]
SENTENCES = [
    "The service receives requests from many clients and forwards each one to a model provider.",
    "Every provider has its own request format, its own error shapes and its own limits.",
    "Latency matters most for interactive chat, where users notice every extra hundred milliseconds.",
    "Batch jobs care more about throughput and cost than about the latency of a single call.",
    "A gateway in front of the providers keeps the keys, applies rate limits and records usage.",
    "When a provider is slow, requests queue up and the tail latency grows long before the median.",
    "Streaming responses send tokens as they are generated, so the first token arrives early.",
    "The team measured the overhead of each component with a profiler under steady load.",
    "Connection pooling avoids a new TCP and TLS handshake for every request to the provider.",
    "Embeddings turn text into vectors that a search index can compare by cosine similarity.",
    "A configuration change should apply without restarting the service or dropping requests.",
    "Retries help with transient errors, but retrying too eagerly can overload a struggling provider.",
    "Each endpoint maps a public name to a provider, a model and a set of credentials.",
    "The dashboard shows requests per second, error rates and the latency percentiles per endpoint.",
    "Timeouts must be long enough for long generations and short enough to free stuck resources.",
    "Input validation rejects malformed requests before any tokens are paid for.",
    "The cost of a request depends on the number of prompt tokens and generated tokens.",
    "Operators want one place to rotate keys, change models and see which team uses what.",
    "A load test should keep sending at a fixed rate even when the service slows down.",
    "Memory use should stay flat during a long soak test at a steady request rate.",
]


def prompt_text(tokens: int, variant: int) -> str:
    """About `tokens` tokens of prose; each variant orders the sentences differently."""
    rng = random.Random(variant)
    target_words = max(4, int(tokens * WORDS_PER_TOKEN))
    words: list[str] = []
    while len(words) < target_words:
        sentences = SENTENCES[:]
        rng.shuffle(sentences)
        for sentence in sentences:
            words.extend(sentence.split())
    return " ".join(words[:target_words])


def chat_body(tokens: int, variant: int, max_tokens: int | None) -> dict[str, Any]:
    question = QUESTIONS[variant % len(QUESTIONS)]
    body: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{prompt_text(tokens, variant)}\n\n{question}"},
        ],
        "temperature": 0.2,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def completions_body(tokens: int, variant: int, max_tokens: int | None) -> dict[str, Any]:
    question = QUESTIONS[variant % len(QUESTIONS)]
    body: dict[str, Any] = {"prompt": f"{prompt_text(tokens, variant)}\n\n{question}\n", "temperature": 0.2}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def embeddings_body(tokens: int, variant: int) -> dict[str, Any]:
    return {"input": prompt_text(tokens, variant)}


def builtin_bodies(kind: str, tokens: int, variants: int, max_tokens: int | None) -> list[dict[str, Any]]:
    if kind == "chat":
        return [chat_body(tokens, v, max_tokens) for v in range(variants)]
    if kind == "completions":
        return [completions_body(tokens, v, max_tokens) for v in range(variants)]
    return [embeddings_body(tokens, v) for v in range(variants)]

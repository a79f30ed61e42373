"""Token counts read from the usage dict every provider produces (OpenAI's shape, with the
providers' cache and reasoning counts), and the estimate for answers without one."""

from __future__ import annotations

import pytest

from gateway.providers import anthropic_messages, bedrock_converse, gemini_replies
from gateway.usage.tokens import Tokens, estimated, tokens_from


def test_openai_usage_with_cached_and_reasoning_tokens():
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 500,
        "total_tokens": 2500,
        "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 320, "accepted_prediction_tokens": 0},
    }
    assert tokens_from(usage) == Tokens(prompt=2000, completion=500, cached=1536, reasoning=320, total=2500)


def test_anthropic_usage_counts_cache_reads_and_writes_into_the_prompt():
    usage = anthropic_messages.usage(
        {
            "input_tokens": 100,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 5000,
            "output_tokens": 250,
            "cache_creation": {"ephemeral_5m_input_tokens": 1200, "ephemeral_1h_input_tokens": 800},
            "service_tier": "standard",
        }
    )
    assert tokens_from(usage) == Tokens(
        prompt=7100, completion=250, cached=5000, cache_write=2000, total=7350, cache_write_1h=800
    )


def test_gemini_usage_with_cached_content_and_thoughts():
    usage = gemini_replies.usage(
        {
            "promptTokenCount": 4000,
            "cachedContentTokenCount": 3000,
            "candidatesTokenCount": 200,
            "thoughtsTokenCount": 800,
            "totalTokenCount": 5000,
        }
    )
    assert tokens_from(usage) == Tokens(prompt=4000, completion=1000, cached=3000, reasoning=800, total=5000)


def test_bedrock_usage_with_cache_reads_and_writes():
    usage = bedrock_converse.usage(
        {
            "inputTokens": 50,
            "outputTokens": 100,
            "cacheReadInputTokens": 1000,
            "cacheWriteInputTokens": 500,
            "totalTokens": 1650,
        }
    )
    assert usage["cache_creation_input_tokens"] == 500  # kept beside the counts, for the record
    assert tokens_from(usage) == Tokens(prompt=1550, completion=100, cached=1000, cache_write=500, total=1650)


def test_embeddings_usage_has_no_completion():
    assert tokens_from({"prompt_tokens": 8, "total_tokens": 8}) == Tokens(prompt=8, total=8)


def test_total_is_derived_when_missing():
    assert tokens_from({"prompt_tokens": 3, "completion_tokens": 4}) == Tokens(
        prompt=3, completion=4, total=7
    )


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "12 tokens",
        {},
        {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},  # what providers give
        {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},  # "unknown" from some servers
        {"prompt_tokens": True, "completion_tokens": "3"},  # not counts
        anthropic_messages.usage(None),
        gemini_replies.usage(None),
        bedrock_converse.usage(None),
    ],
)
def test_no_usage_reported(usage):
    assert tokens_from(usage) is None


def test_negative_or_odd_detail_counts_are_ignored():
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": None,
        "completion_tokens_details": {"reasoning_tokens": -3},
    }
    assert tokens_from(usage) == Tokens(prompt=10, completion=5, total=15)


def test_estimate_rounds_up_and_is_flagged():
    assert estimated(prompt_chars=9, completion_chars=4) == Tokens(
        prompt=3, completion=1, total=4, estimated=True
    )
    assert estimated(0, 0) == Tokens(estimated=True)

"""Per provider family, answered and streamed: the tokens the provider reported (cache reads and
writes, reasoning) land in the request's usage record, priced from the shipped table; a stream
that ends early or an answer without usage gets an estimate flagged as such."""

from __future__ import annotations

import pytest

from tests.providers.bedrock_upstream import event as bedrock_event
from tests.support.transport import sse
from tests.usage.inprocess import InProcessGateway

JSON = {"content-type": "application/json"}
EVENTS = {"content-type": "text/event-stream"}
BEDROCK_EVENTS = {"content-type": "application/vnd.amazon.eventstream"}
CHAT = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
STREAM = {**CHAT, "stream": True}


def endpoint(provider: str, model: str, config: str, extra: str = "") -> str:
    return f"""
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: {provider}
      name: "{model}"
      config: {config}{extra}
"""


def tokens(record) -> dict[str, int | bool]:
    return {
        "prompt": record.prompt_tokens,
        "completion": record.completion_tokens,
        "cached": record.cached_tokens,
        "cache_write": record.cache_write_tokens,
        "reasoning": record.reasoning_tokens,
        "total": record.total_tokens,
        "estimated": record.estimated,
    }


# -- OpenAI ------------------------------------------------------------------------------------
OPENAI = endpoint("openai", "o4-mini-2025-04-16", "{openai_api_key: sk-usage-test}")
OPENAI_USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 500,
    "total_tokens": 2500,
    "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 320, "audio_tokens": 0},
}
OPENAI_TOKENS = {
    "prompt": 2000,
    "completion": 500,
    "cached": 1536,
    "cache_write": 0,
    "reasoning": 320,
    "total": 2500,
    "estimated": False,
}
# o4-mini: $1.10 input, $0.275 cached input, $4.40 output per million
OPENAI_COST = (464 * 1.10 + 1536 * 0.275 + 500 * 4.40) / 1e6


def openai_answer(usage=OPENAI_USAGE) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "o4-mini-2025-04-16",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def openai_chunks(words=("Par", "is."), usage=OPENAI_USAGE, finish: bool = True) -> list[dict]:
    def chunk(delta, reason=None):
        choices = [{"index": 0, "delta": delta, "finish_reason": reason}]
        return {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "o4-mini",
            "choices": choices,
        }

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": word}) for word in words]
    if finish:
        events.append(chunk({}, "stop"))
    if usage is not None:
        events.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "o4-mini",
                       "choices": [], "usage": usage})  # fmt: skip
    return events


def test_openai_answer():
    gateway = InProcessGateway(OPENAI, (200, JSON, openai_answer()))
    answer = gateway.post("/v1/chat/completions", {**CHAT, "model": "chat"})
    assert answer.status == 200 and answer.json()["usage"]["prompt_tokens"] == 2000
    record = gateway.record
    assert tokens(record) == OPENAI_TOKENS
    assert record.cost_usd == pytest.approx(OPENAI_COST, rel=1e-12) and record.priced
    assert (record.provider, record.model, record.endpoint) == ("openai", "o4-mini-2025-04-16", "chat")
    assert record.status == 200 and record.error is None and not record.stream


@pytest.mark.parametrize("client_options", [None, {"include_usage": False}])
def test_openai_stream_asks_upstream_for_usage_and_hides_the_usage_chunk(client_options):
    """The gateway always asks OpenAI for the usage chunk; a client that did not ask for it does
    not get it (the usage rides on the finish chunk, as for every provider)."""
    gateway = InProcessGateway(OPENAI, (200, EVENTS, [sse(*openai_chunks())]))
    body = {**STREAM, "model": "chat"}
    if client_options is not None:
        body["stream_options"] = client_options
    answer = gateway.post("/v1/chat/completions", body)
    assert gateway.transport.sent[0].body["stream_options"] == {"include_usage": True}
    chunks = answer.events()
    assert chunks[-1] == "[DONE]" and all(chunk["choices"] for chunk in chunks[:-1])
    record = gateway.record
    assert tokens(record) == OPENAI_TOKENS and record.stream
    assert record.cost_usd == pytest.approx(OPENAI_COST, rel=1e-12)


def test_openai_stream_usage_chunk_reaches_a_client_that_asked():
    gateway = InProcessGateway(OPENAI, (200, EVENTS, [sse(*openai_chunks())]))
    body = {**STREAM, "model": "chat", "stream_options": {"include_usage": True}}
    chunks = gateway.post("/v1/chat/completions", body).events()
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["prompt_tokens"] == 2000
    assert tokens(gateway.record) == OPENAI_TOKENS


def test_an_answer_without_usage_is_estimated_and_flagged():
    answer = openai_answer(usage=None)
    answer["choices"][0]["message"]["content"] = "Paris is the capital."  # 21 characters
    gateway = InProcessGateway(OPENAI, (200, JSON, answer))
    gateway.post("/v1/chat/completions", {**CHAT, "model": "chat"})
    record = gateway.record
    assert record.estimated and record.completion_tokens == 6  # 21 characters / 4, rounded up
    assert record.prompt_tokens > 0 and record.cached_tokens == 0
    assert record.cost_usd == pytest.approx((record.prompt_tokens * 1.10 + 6 * 4.40) / 1e6, rel=1e-12)


def test_a_stream_without_usage_is_estimated_from_what_was_delivered():
    """An OpenAI-compatible server that ignores include_usage: the text delivered is counted."""
    gateway = InProcessGateway(
        OPENAI, (200, EVENTS, [sse(*openai_chunks(("Paris", " is big."), usage=None))])
    )
    gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"})
    record = gateway.record
    assert record.estimated and record.completion_tokens == 4  # "Paris is big." is 13 characters
    assert record.error is None and record.stream


def test_a_stream_cut_by_the_upstream_records_what_was_delivered():
    events = openai_chunks(("Paris", " is"), usage=None, finish=False)
    reset = ConnectionResetError("Connection reset by peer")
    gateway = InProcessGateway(OPENAI, (200, EVENTS, [sse(*events, done=False), reset]))
    answer = gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"})
    assert answer.status == 200 and "error" in answer.events()[-1]
    record = gateway.record
    assert record.estimated and record.completion_tokens == 2  # "Paris is": 8 characters
    assert record.status == 200 and record.error == "UpstreamUnavailable"


def test_a_client_gone_mid_stream_is_recorded_with_what_it_got():
    words = ["word "] * 40  # 200 characters, one event each
    chunks = [sse(event, done=False) for event in openai_chunks(words)]
    gateway = InProcessGateway(OPENAI, (200, EVENTS, chunks))
    answer = gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"}, leave_after_body_parts=3)
    assert b"[DONE]" not in answer.body
    record = gateway.record
    assert record.estimated and 0 < record.completion_tokens < 50
    assert record.stream and record.status == 200


# -- Anthropic ---------------------------------------------------------------------------------
ANTHROPIC = endpoint("anthropic", "claude-sonnet-4-5-20250929", "{anthropic_api_key: sk-ant-usage-test}")
ANTHROPIC_USAGE = {
    "input_tokens": 100,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 5000,
    "output_tokens": 250,
    "cache_creation": {"ephemeral_5m_input_tokens": 1500, "ephemeral_1h_input_tokens": 500},
}
ANTHROPIC_TOKENS = {
    "prompt": 7100,
    "completion": 250,
    "cached": 5000,
    "cache_write": 2000,
    "reasoning": 0,
    "total": 7350,
    "estimated": False,
}
# Sonnet 4.5: $3 input, $0.30 cache read, $3.75 cache write (5 minutes), $6 (1 hour), $15 output
ANTHROPIC_COST = (100 * 3 + 5000 * 0.30 + 1500 * 3.75 + 500 * 6 + 250 * 15) / 1e6


def anthropic_events(*events: dict) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\n" + sse(e, done=False) for e in events)


def test_anthropic_answer_with_cache_read_and_write():
    answer = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Paris."}],
        "stop_reason": "end_turn",
        "usage": ANTHROPIC_USAGE,
    }
    gateway = InProcessGateway(ANTHROPIC, (200, JSON, answer))
    assert gateway.post("/endpoints/chat/invocations", CHAT).status == 200
    record = gateway.record
    assert tokens(record) == ANTHROPIC_TOKENS
    assert record.cost_usd == pytest.approx(ANTHROPIC_COST, rel=1e-12)
    assert record.route == "mlflow" and record.provider == "anthropic"


def test_anthropic_stream_merges_message_start_and_message_delta():
    """Input and cache counts come in message_start, the output count in message_delta."""
    start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
    raw = anthropic_events(
        {
            "type": "message_start",
            "message": {"id": "msg_1", "model": "claude-sonnet-4-5", "usage": start_usage},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Paris."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 250}},
        {"type": "message_stop"},
    )
    gateway = InProcessGateway(ANTHROPIC, (200, EVENTS, [raw]))
    gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"})
    record = gateway.record
    assert tokens(record) == ANTHROPIC_TOKENS and record.stream
    assert record.cost_usd == pytest.approx(ANTHROPIC_COST, rel=1e-12)


def test_anthropic_stream_cut_before_message_stop_is_estimated():
    raw = anthropic_events(
        {
            "type": "message_start",
            "message": {"id": "m", "model": "claude-sonnet-4-5", "usage": ANTHROPIC_USAGE},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Paris, the"}},
    )
    gateway = InProcessGateway(ANTHROPIC, (200, EVENTS, [raw]))
    gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"})
    record = gateway.record
    assert record.estimated and record.completion_tokens == 3  # 10 characters
    assert record.error == "UpstreamUnavailable"


# -- Gemini ------------------------------------------------------------------------------------
GEMINI = endpoint("gemini", "gemini-2.5-flash", "{gemini_api_key: gemini-usage-test}")
GEMINI_METADATA = {
    "promptTokenCount": 4000,
    "cachedContentTokenCount": 3000,
    "candidatesTokenCount": 200,
    "thoughtsTokenCount": 800,
    "totalTokenCount": 5000,
}
GEMINI_TOKENS = {
    "prompt": 4000,
    "completion": 1000,  # candidates + thoughts
    "cached": 3000,
    "cache_write": 0,
    "reasoning": 800,
    "total": 5000,
    "estimated": False,
}
# 2.5 Flash: $0.30 input, $0.03 cached input, $2.50 output (thinking included) per million
GEMINI_COST = (1000 * 0.30 + 3000 * 0.03 + 1000 * 2.50) / 1e6


def gemini_event(text: str, metadata: dict, finish: str | None = None) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": metadata, "modelVersion": "gemini-2.5-flash"}


def test_gemini_answer_with_cached_and_thought_tokens():
    gateway = InProcessGateway(GEMINI, (200, JSON, gemini_event("Paris.", GEMINI_METADATA, "STOP")))
    gateway.post("/v1/chat/completions", {**CHAT, "model": "chat"})
    record = gateway.record
    assert tokens(record) == GEMINI_TOKENS
    assert record.cost_usd == pytest.approx(GEMINI_COST, rel=1e-12)


def test_gemini_stream_takes_the_last_of_its_growing_usage():
    growing = [
        {"promptTokenCount": 4000, "cachedContentTokenCount": 3000, "thoughtsTokenCount": 800, "totalTokenCount": 4800},
        {**GEMINI_METADATA, "candidatesTokenCount": 120, "totalTokenCount": 4920},
        GEMINI_METADATA,
    ]  # fmt: skip
    events = [
        gemini_event("Par", growing[0]),
        gemini_event("is", growing[1]),
        gemini_event(".", growing[2], "STOP"),
    ]
    gateway = InProcessGateway(GEMINI, (200, EVENTS, [sse(*events, done=False)]))
    gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"})
    record = gateway.record
    assert tokens(record) == GEMINI_TOKENS and record.stream
    assert record.cost_usd == pytest.approx(GEMINI_COST, rel=1e-12)


# -- Bedrock -----------------------------------------------------------------------------------
BEDROCK = endpoint(
    "bedrock",
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "{aws_config: {aws_bearer_token: bedrock-usage-test, aws_region: us-east-1}}",
)
BEDROCK_USAGE = {
    "inputTokens": 50,
    "outputTokens": 100,
    "cacheReadInputTokens": 1000,
    "cacheWriteInputTokens": 500,
    "totalTokens": 1650,
}
BEDROCK_TOKENS = {
    "prompt": 1550,
    "completion": 100,
    "cached": 1000,
    "cache_write": 500,
    "reasoning": 0,
    "total": 1650,
    "estimated": False,
}
# Claude 3.5 Haiku on Bedrock (a US cross-region profile): $0.80 input, $0.08 cache read,
# $1.00 cache write, $4 output per million
BEDROCK_COST = (50 * 0.80 + 1000 * 0.08 + 500 * 1.00 + 100 * 4) / 1e6


def test_bedrock_answer_with_cache_read_and_write():
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
        "stopReason": "end_turn",
        "usage": BEDROCK_USAGE,
        "metrics": {"latencyMs": 100},
    }
    gateway = InProcessGateway(BEDROCK, (200, JSON, answer))
    gateway.post("/v1/chat/completions", {**CHAT, "model": "chat"})
    record = gateway.record
    assert tokens(record) == BEDROCK_TOKENS
    assert record.cost_usd == pytest.approx(BEDROCK_COST, rel=1e-12)


def test_bedrock_stream_usage_from_the_metadata_event():
    frames = [
        bedrock_event("messageStart", {"role": "assistant"}),
        bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Paris."}}),
        bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
        bedrock_event("messageStop", {"stopReason": "end_turn"}),
        bedrock_event("metadata", {"usage": BEDROCK_USAGE, "metrics": {"latencyMs": 100}}),
    ]
    gateway = InProcessGateway(BEDROCK, (200, BEDROCK_EVENTS, frames))
    gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"})
    record = gateway.record
    assert tokens(record) == BEDROCK_TOKENS and record.stream
    assert record.cost_usd == pytest.approx(BEDROCK_COST, rel=1e-12)


def test_bedrock_n_choices_sum_the_cache_counts_of_every_call():
    """n > 1 is n Converse calls, each billed: cache reads and writes are summed like the rest."""
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
        "stopReason": "end_turn",
        "usage": BEDROCK_USAGE,
    }
    gateway = InProcessGateway(BEDROCK, (200, JSON, answer), (200, JSON, answer))
    gateway.post("/v1/chat/completions", {**CHAT, "model": "chat", "n": 2})
    record = gateway.record
    assert tokens(record) == {
        key: value * 2 for key, value in BEDROCK_TOKENS.items() if key != "estimated"
    } | {"estimated": False}
    assert record.cost_usd == pytest.approx(2 * BEDROCK_COST, rel=1e-12)


@pytest.mark.parametrize("status", [400, 429, 500])
def test_an_upstream_error_records_no_tokens_and_no_cost(status):
    error = {"error": {"message": "no", "type": "requests"}}
    gateway = InProcessGateway(OPENAI, (status, JSON, error))
    assert gateway.post("/v1/chat/completions", {**CHAT, "model": "chat"}).status == status
    record = gateway.record
    assert record.error == "UpstreamError" and record.status == status
    assert (record.prompt_tokens, record.total_tokens, record.cost_usd, record.estimated) == (
        0,
        0,
        0.0,
        False,
    )


def test_a_stream_refused_before_its_first_event_records_no_tokens():
    gateway = InProcessGateway(OPENAI, (503, JSON, [b'{"error": {"message": "overloaded"}}']))
    assert gateway.post("/v1/chat/completions", {**STREAM, "model": "chat"}).status == 503
    record = gateway.record
    assert record.stream and record.total_tokens == 0 and record.cost_usd == 0.0 and not record.estimated

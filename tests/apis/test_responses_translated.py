"""The Responses API on providers without it (Anthropic, Gemini): translated to Chat Completions
and back, streams included. The real openai SDK (its own accumulator builds the final response)
against a real gateway and emulated upstreams; what the upstream receives is asserted too."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from openai.types.responses import Response

from tests.support.api_gateway import ANTHROPIC_KEY, GEMINI_KEY

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TEXT = {"claude": "Hello from Claude — ünïcødé ✓", "gem": "Hello from Gemini!"}


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def sse_events(raw: bytes) -> list[dict]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


@pytest.mark.parametrize("model", ["claude", "gem"])
def test_create(client, model):
    response = client.responses.create(
        model=model, input="hi", instructions="Be brief.", max_output_tokens=100
    )
    assert response.output_text == TEXT[model]
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    raw = client.responses.with_raw_response.create(model=model, input="hi").http_response.json()
    Response.model_validate(raw)  # the wire object has every field the SDK's model requires


def test_anthropic_receives_a_messages_request(client, upstreams):
    client.responses.create(model="claude", input="hi", instructions="Be brief.", max_output_tokens=100)
    sent = upstreams[1].requests[-1]
    assert sent.body == {
        "model": "claude-text",
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Be brief.",
        "max_tokens": 100,
    }
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY


def test_usage_carries_cached_and_reasoning_tokens(client):
    claude = client.responses.create(model="claude", input="hi")
    assert claude.usage is not None
    assert claude.usage.input_tokens_details.cached_tokens == 10  # Anthropic's cache reads
    gem = client.responses.create(model="gem", input="hi")
    assert gem.usage is not None
    assert gem.usage.output_tokens_details.reasoning_tokens == 3  # Gemini's thoughts
    assert gem.usage.input_tokens_details.cached_tokens == 2


@pytest.mark.parametrize("model", ["claude", "gem"])
def test_stream_accumulates_and_numbers_every_event(gateway, client, model):
    with client.responses.stream(model=model, input="hi") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == TEXT[model] == final.output_text
    assert final.usage is not None and final.usage.total_tokens > 0
    with httpx.stream(
        "POST", f"{gateway.url}/v1/responses", json={"model": model, "input": "hi", "stream": True}
    ) as r:
        events = sse_events(b"".join(r.iter_bytes()))
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    kinds = [event["type"] for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[-1]["response"]["usage"]["input_tokens"] > 0


@pytest.mark.parametrize(("model", "upstream_index"), [("claude-tools", 1), ("gem-tools", 2)])
def test_function_calling_round_trip(client, upstreams, model, upstream_index):
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert orjson.loads(calls[0].arguments) == {"city": "Paris"}
    outputs = [
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'} for call in calls
    ]
    client.responses.create(model=model, previous_response_id=first.id, input=outputs, tools=[WEATHER])
    sent = upstreams[upstream_index].requests[-1].body
    if upstream_index == 1:  # Anthropic: the call as tool_use, its output as tool_result
        kinds = [
            [block["type"] for block in m["content"]]
            for m in sent["messages"]
            if isinstance(m["content"], list)
        ]
        assert ["tool_use"] in [[k for k in blocks if k == "tool_use"] for blocks in kinds]
        assert any("tool_result" in blocks for blocks in kinds)
        assert sent["tools"][0]["name"] == "get_weather"
    else:  # Gemini: functionCall in a model turn, functionResponse in the next
        parts = [part for content in sent["contents"] for part in content["parts"]]
        assert any("functionCall" in part for part in parts)
        assert any(part.get("functionResponse", {}).get("name") == "get_weather" for part in parts)


def test_stream_of_function_calls(client):
    with client.responses.stream(model="claude-tools", input="Weather?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [orjson.loads(call.arguments) for call in calls] == [{"city": "Paris"}, {"city": "London"}]
    assert final.output[0].type == "message" and final.output[0].content[0].text == "Checking both cities."


@pytest.mark.parametrize("model", ["claude", "gem"])
def test_previous_response_id_sends_the_conversation_again(client, upstreams, model):
    first = client.responses.create(model=model, input="My name is Ada.")
    client.responses.create(model=model, input="What is my name?", previous_response_id=first.id)
    sent = upstreams[1 if model == "claude" else 2].requests[-1].body
    if model == "claude":
        assert sent["messages"] == [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": TEXT["claude"]},
            {"role": "user", "content": "What is my name?"},
        ]
    else:
        texts = [(c["role"], c["parts"][0]["text"]) for c in sent["contents"]]
        assert texts == [("user", "My name is Ada."), ("model", TEXT["gem"]), ("user", "What is my name?")]


def test_previous_response_of_a_stream(client, upstreams):
    with client.responses.stream(model="claude", input="First.") as stream:
        first = stream.get_final_response()
    client.responses.create(model="claude", input="Second.", previous_response_id=first.id)
    assert [m["content"] for m in upstreams[1].requests[-1].body["messages"]] == [
        "First.",
        TEXT["claude"],
        "Second.",
    ]


def test_store_false_is_not_kept_and_unknown_ids_are_404(client):
    unstored = client.responses.create(model="claude", input="hi", store=False)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="claude", input="again", previous_response_id=unstored.id)
    assert unstored.id in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_retrieve_and_delete_a_translated_response(client):
    created = client.responses.create(model="gem", input="hi")
    assert client.responses.retrieve(created.id).output_text == TEXT["gem"]
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_upstream_error_in_openai_shape(client):
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="claude-err", input="hi")
    assert caught.value.status_code == 529
    assert caught.value.body["message"].endswith("Overloaded")  # type: ignore[index]


def test_stream_error_is_an_error_event_then_failed(gateway):
    body = {"model": "claude-stream-error", "input": "hi", "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/responses", json=body) as answer:
        assert answer.status_code == 200
        events = sse_events(b"".join(answer.iter_bytes()))
    assert [event["type"] for event in events[-2:]] == ["error", "response.failed"]
    assert "Overloaded" in events[-2]["message"]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))


def test_input_the_provider_cannot_take_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="claude", input=[{"type": "computer_call_output", "call_id": "c", "output": {}}]
        )
    assert "computer_call_output" in caught.value.message


def test_gemini_key_never_leaves_for_the_wrong_upstream(upstreams):
    assert all(GEMINI_KEY not in str(r.headers) for r in upstreams[1].requests)

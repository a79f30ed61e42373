"""The Responses API against OpenAI and Azure endpoints: a passthrough. The real openai SDK
against a real gateway and an emulated OpenAI upstream: the body reaches the upstream as sent
(only `model` set to the endpoint's), with the gateway's key; answers, stream events and errors
come back as the upstream sent them; GET/DELETE reach the upstream that served the response."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.support.api_gateway import OPENAI_KEY
from tests.support.responses_upstream import USAGE

CLIENT_KEY = "sk-client-key-that-must-not-travel"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def openai_upstream(upstreams):
    return upstreams[0]


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def last_responses_request(upstream):
    return [r for r in upstream.requests if "responses" in r.path][-1]


def test_create_sends_the_body_as_sent_with_the_gateway_key(client, openai_upstream):
    response = client.responses.create(
        model="gpt",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        instructions="Answer briefly.",
        metadata={"trace": "t-1"},
        max_output_tokens=64,
    )
    assert response.output_text == "Hello from Responses!"
    assert response.id.startswith("resp_up")
    assert response.usage is not None and response.usage.input_tokens == USAGE["input_tokens"]
    sent = last_responses_request(openai_upstream)
    assert sent.path == "/v1/responses"
    assert sent.body == {
        "model": "gpt-5",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "instructions": "Answer briefly.",
        "metadata": {"trace": "t-1"},
        "max_output_tokens": 64,
    }
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert all(CLIENT_KEY not in value for value in sent.headers.values())


def test_stream_relays_every_event_as_the_upstream_sent_it(gateway, client, openai_upstream):
    with client.responses.stream(model="gpt", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "Hello from Responses!"
    assert final.usage is not None and final.usage.total_tokens == USAGE["total_tokens"]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    # byte for byte: the raw SSE the gateway sends is the upstream's own
    with httpx.stream(
        "POST", f"{gateway.url}/v1/responses", json={"model": "gpt", "input": "hi", "stream": True}
    ) as answer:
        raw = b"".join(answer.iter_bytes())
    numbers = [
        orjson.loads(line[6:])["sequence_number"] for line in raw.split(b"\n") if line.startswith(b"data: ")
    ]
    assert numbers == list(range(len(numbers)))
    assert raw.count(b"event: response.output_text.delta") == 4
    assert last_responses_request(openai_upstream).body["stream"] is True


def test_function_calling_round_trip(client, openai_upstream):
    first = client.responses.create(model="gpt", input="Weather in Paris?", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    second = client.responses.create(
        model="gpt",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}],
    )
    assert second.output_text == "Hello from Responses!"
    sent = last_responses_request(openai_upstream).body
    assert sent["previous_response_id"] == first.id  # the upstream keeps the conversation
    assert sent["input"] == [
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}
    ]


def test_stream_of_a_function_call_accumulates(client):
    with client.responses.stream(model="gpt", input="Weather?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    assert final.output[0].type == "function_call"
    assert final.output[0].arguments == '{"city": "Paris"}'


def test_retrieve_and_delete_reach_the_upstream(client, openai_upstream):
    created = client.responses.create(model="gpt", input="hi")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "Hello from Responses!"
    got = openai_upstream.requests[-1]
    assert (got.method, got.path) == ("GET", f"/v1/responses/{created.id}")
    assert got.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    client.responses.delete(created.id)
    assert (openai_upstream.requests[-1].method, openai_upstream.requests[-1].path) == (
        "DELETE",
        f"/v1/responses/{created.id}",
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)  # forgotten by the gateway too


def test_unknown_response_id_is_an_openai_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve("resp_never_served")
    assert "resp_never_served" in caught.value.message


def test_upstream_error_keeps_its_status_in_openai_shape(client):
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model="gpt-err", input="hi")
    assert caught.value.status_code == 429
    assert "Upstream says 429" in caught.value.message


def test_stream_error_event_reaches_the_client(gateway):
    body = {"model": "gpt-stream-error", "input": "hi", "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/responses", json=body) as answer:
        assert answer.status_code == 200
        raw = b"".join(answer.iter_bytes())
    assert b"event: error" in raw and b"The server had an error" in raw


def test_unknown_model_and_wrong_endpoint_type(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="embed", input="hi")
    assert "not a chat endpoint" in caught.value.message


def test_azure_endpoint_gets_its_deployment_and_api_key(client, openai_upstream):
    response = client.responses.create(model="azure", input="hi")
    assert response.output_text == "Hello from Responses!"
    sent = last_responses_request(openai_upstream)
    assert (sent.path, sent.query) == ("/openai/responses", "api-version=2025-04-01-preview")
    assert sent.body["model"] == "my-deployment"
    assert sent.headers["api-key"] == OPENAI_KEY
    assert "Authorization" not in sent.headers


def test_get_on_the_create_path_is_405(gateway):
    answer = httpx.get(f"{gateway.url}/v1/responses")
    assert answer.status_code == 405

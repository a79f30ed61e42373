"""Gemini's native API (`/v1beta/models/{endpoint}:generateContent`, `:streamGenerateContent`)
with the real google-genai SDK against a real gateway: a passthrough to a Gemini endpoint (the
body as sent, the gateway's key), a translation for OpenAI and Anthropic endpoints, streams,
function calls, and errors in Google's shape."""

from __future__ import annotations

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import launch
from tests.support.api_gateway import GEMINI_KEY, OPENAI_KEY

CLIENT_KEY = "client-gemini-key-that-must-not-travel"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather in a city",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
BODY = {
    "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "generationConfig": {"temperature": 0.3, "maxOutputTokens": 50, "thinkingConfig": {"thinkingBudget": 0}},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
}


@pytest.fixture(scope="module")
def client(gateway):
    return genai.Client(
        api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gateway.url, api_version="v1beta")
    )


def google(upstreams):
    return upstreams[2]


# -- passthrough: Gemini endpoint ---------------------------------------------------------
def test_passthrough_sends_the_body_as_sent_with_the_gateway_key(gateway, upstreams):
    answer = httpx.post(f"{gateway.url}/v1beta/models/gem:generateContent", json=BODY, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["candidates"][0]["content"]["parts"][0]["text"] == "Hello from Gemini!"
    assert answer.json()["responseId"] == "resp-1"  # Google's own answer, untouched
    sent = google(upstreams).requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.body == BODY
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY


def test_sdk_generate_content_passthrough(client, upstreams):
    response = client.models.generate_content(model="gem", contents="hi")
    assert response.text == "Hello from Gemini!"
    assert response.usage_metadata is not None and response.usage_metadata.prompt_token_count == 5
    sent = google(upstreams).requests[-1]
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert all(CLIENT_KEY not in value for value in sent.headers.values())


def test_sdk_stream_passthrough(client, upstreams):
    chunks = list(client.models.generate_content_stream(model="gem", contents="hi"))
    assert "".join(chunk.text or "" for chunk in chunks) == "Hello from Gemini!"
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.total_token_count == 12
    sent = google(upstreams).requests[-1]
    assert (sent.path, sent.query) == ("/v1beta/models/gemini-2.0-flash:streamGenerateContent", "alt=sse")


def test_function_calls_pass_through(client):
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    response = client.models.generate_content(model="gem-tools", contents="Weather?", config=config)
    calls = response.function_calls or []
    assert [(call.name, call.args) for call in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"zone": "CET"}),
    ]


def test_stream_without_alt_sse_is_relayed_as_the_upstream_sends_it(gateway, upstreams):
    answer = httpx.post(f"{gateway.url}/v1beta/models/gem:streamGenerateContent", json=BODY, timeout=10)
    assert answer.status_code == 200
    assert google(upstreams).requests[-1].query == ""  # no alt=sse added on the client's behalf
    assert answer.headers["content-type"].startswith("text/event-stream")  # what the emulation answers
    events = [orjson.loads(line[6:]) for line in answer.content.split(b"\r\n") if line.startswith(b"data: ")]
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "Hello from Gemini!"


def test_upstream_error_in_googles_shape(client):
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gem-err", contents="hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert "Resource has been exhausted" in (caught.value.message or "")


def test_stream_error_is_relayed(gateway):
    url = f"{gateway.url}/v1beta/models/gem-stream-error:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=BODY, timeout=10) as answer:
        raw = b"".join(answer.iter_bytes())
    assert b'"error"' in raw and b"Internal error encountered." in raw


# -- translation: OpenAI and Anthropic endpoints --------------------------------------------
def test_translated_to_openai(client, upstreams):
    config = types.GenerateContentConfig(
        system_instruction="Be brief.", temperature=0.3, max_output_tokens=50
    )
    response = client.models.generate_content(model="gpt", contents="hi", config=config)
    assert response.text == "Hello from the mock upstream!"
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (5, 6)
    sent = upstreams[0].requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "gpt-5",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "temperature": 0.3,
        "max_tokens": 50,
    }
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"


@pytest.mark.parametrize(
    ("model", "text"), [("gpt", "Hello from the mock upstream!"), ("claude", "Hello from Claude — ünïcødé ✓")]
)
def test_translated_stream(client, model, text):
    chunks = list(client.models.generate_content_stream(model=model, contents="hi"))
    assert "".join(chunk.text or "" for chunk in chunks) == text
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count


def test_translated_function_calling_round_trip(client, upstreams):
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    first = client.models.generate_content(model="gpt", contents="Weather in Paris?", config=config)
    call = (first.function_calls or [None])[0]
    assert call is not None and (call.name, call.args) == ("get_weather", {"city": "Paris"})
    sent = upstreams[0].requests[-1].body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    history = [
        types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")]),
        first.candidates[0].content,  # type: ignore[index]
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"temp": 21})],
        ),
    ]
    client.models.generate_content(model="gpt", contents=history)
    messages = upstreams[0].requests[-1].body["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'}


def test_translated_stream_of_a_function_call(client):
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    chunks = list(client.models.generate_content_stream(model="gpt", contents="Weather?", config=config))
    calls = [call for chunk in chunks for call in chunk.function_calls or ()]
    assert [(call.name, call.args) for call in calls] == [("get_weather", {"city": "Paris"})]


def test_translated_json_array_stream(gateway):
    answer = httpx.post(f"{gateway.url}/v1beta/models/gpt:streamGenerateContent", json=BODY, timeout=10)
    assert answer.status_code == 200
    items = answer.json()
    assert "".join(
        part.get("text", "") for item in items for part in item["candidates"][0]["content"]["parts"]
    ) == ("Hello from the mock upstream!")
    assert items[-1]["usageMetadata"]["promptTokenCount"] == 5


def test_translated_errors_in_googles_shape(gateway, client):
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gpt-err", contents="hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="nope", contents="hi")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    url = f"{gateway.url}/v1beta/models/claude-stream-error:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=BODY, timeout=10) as answer:
        events = [
            orjson.loads(line[6:])
            for line in b"".join(answer.iter_bytes()).split(b"\r\n")
            if line.startswith(b"data: ")
        ]
    error = events[-1]["error"]
    assert set(error) == {"code", "message", "status"} and "Overloaded" in error["message"]


def test_v1_path_of_the_sdk(gateway):
    v1 = genai.Client(
        api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gateway.url, api_version="v1")
    )
    assert v1.models.generate_content(model="claude", contents="hi").text == "Hello from Claude — ünïcødé ✓"


def test_count_tokens(gateway, client, upstreams):
    with pytest.raises(errors.ClientError) as unknown:
        client.models.count_tokens(model="nope", contents="hi")
    assert unknown.value.code == 404
    estimated = client.models.count_tokens(model="claude", contents="hello there, gateway")
    assert estimated.total_tokens == 9  # 20 characters at 4 a token, + 4 for the message
    answer = httpx.post(f"{gateway.url}/v1beta/models/gpt:countTokens", json=BODY, timeout=10)
    assert answer.headers["x-gateway-token-count"] == "estimated"
    httpx.post(
        f"{gateway.url}/v1beta/models/gem:countTokens", json={"contents": BODY["contents"]}, timeout=10
    )
    sent = google(upstreams).requests[-1]  # Gemini counts itself
    assert (sent.path, sent.body) == (
        "/v1beta/models/gemini-2.0-flash:countTokens",
        {"contents": BODY["contents"]},
    )
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY


def test_gemini_cli_model_names_reach_the_aliased_endpoint(client, upstreams):
    assert client.models.generate_content(model="gemini-2.5-pro", contents="hi").text == "Hello from Gemini!"
    assert google(upstreams).requests[-1].path == "/v1beta/models/gemini-2.0-flash:generateContent"


# -- passthrough: Vertex AI (a Gemini model) -----------------------------------------------
@pytest.fixture(scope="module")
def vertex_gateway(upstreams, tmp_path_factory):
    from tests.providers.test_vertex_ai import endpoint, inline, service_account

    google_upstream = google(upstreams)
    credentials = inline(service_account(google_upstream, "gemini-native"))
    config = "endpoints:" + endpoint("vertex-gem", "chat", "gemini-2.5-flash", google_upstream, credentials)
    process = launch(tmp_path_factory.mktemp("gemini-vertex"), config)
    yield process
    process.stop()


def test_vertex_gemini_passthrough_with_an_oauth_token(vertex_gateway, upstreams):
    options = types.HttpOptions(base_url=vertex_gateway.url, api_version="v1beta")
    client = genai.Client(api_key=CLIENT_KEY, http_options=options)
    assert client.models.generate_content(model="vertex-gem", contents="hi").text == "Hello from Gemini!"
    sent = google(upstreams).requests[-1]
    prefix = "/v1/projects/demo-project/locations/global/publishers/google/models/gemini-2.5-flash"
    assert sent.path == f"{prefix}:generateContent"
    assert sent.body == {"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}
    assert sent.headers["Authorization"].startswith("Bearer ya29.test-token-")
    text = "".join(
        chunk.text or "" for chunk in client.models.generate_content_stream(model="vertex-gem", contents="hi")
    )
    assert text == "Hello from Gemini!"
    assert (google(upstreams).requests[-1].path, google(upstreams).requests[-1].query) == (
        f"{prefix}:streamGenerateContent",
        "alt=sse",
    )

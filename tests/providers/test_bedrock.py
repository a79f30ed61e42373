"""The Amazon Bedrock provider against an emulated Bedrock Runtime and STS (spec §7.10): every
auth mode with its SigV4 signature recomputed upstream, the exact Converse / InvokeModel
requests, the client-visible answers, binary event streams and each error class."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import zlib
from unittest import mock

import botocore.auth
import openai
import pytest
from botocore.credentials import ReadOnlyCredentials
from botocore.eventstream import EventStreamBuffer

from gateway._native import EventStreamError, EventStreamParser, NativeError
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.providers.bedrock_auth import (
    AssumedRoleCredentials,
    BedrockAuth,
    parse_aws_config,
    runtime_endpoint,
    sign,
)
from tests.conftest import launch
from tests.providers.bedrock_upstream import (
    REGION,
    WORDS,
    BedrockUpstream,
    encode_message,
    event,
    stream_frames,
)
from tests.support.client import invoke, upstream_detail
from tests.support.contract import check_stream_contract

INCLUDE_USAGE = {"stream_options": {"include_usage": True}}

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
PROFILE_ARN = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{CLAUDE}"
KEYS = {"id": "AKIDKEYSEXAMPLE", "secret": "keys-secret/K7MDENG", "token": "keys-session-token"}
ENV_KEYS = {"id": "AKIDENVEXAMPLE", "secret": "env-secret+bPxRfi"}
BEARER = "ABSKbedrock-api-key-example"
ROLE = "arn:aws:iam::123456789012:role/gateway"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
# prompt = input + cache reads (+ cache writes), cached tokens in prompt_tokens_details (spec §7.10)
EXPECTED_USAGE = {
    "prompt_tokens": 15,
    "completion_tokens": 5,
    "total_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 3},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "format": "city-name", "default": "Paris"}},
            "anyOf": [{"required": ["city"]}],
            "$defs": {"unit": {"enum": ["C", "F"]}},
        },
    },
}

KEYS_AUTH = f"""aws_access_key_id: {KEYS["id"]}
          aws_secret_access_key: {KEYS["secret"]}
          aws_session_token: {KEYS["token"]}
          aws_region: {REGION}"""


def endpoint(name: str, model: str, auth: str = KEYS_AUTH, kind: str = "chat") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: bedrock
      name: "{model}"
      config:
        aws_config:
          {auth}
"""


@pytest.fixture(scope="module")
def upstream():
    server = BedrockUpstream().start()
    server.credentials[KEYS["id"]] = (KEYS["secret"], KEYS["token"])
    server.credentials[ENV_KEYS["id"]] = (ENV_KEYS["secret"], None)
    server.bearer_tokens.add(BEARER)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    endpoints = [
        endpoint("chat", CLAUDE),
        endpoint("profile", PROFILE_ARN),
        endpoint("bearer", CLAUDE, f"aws_bearer_token: {BEARER}\n          aws_region: {REGION}"),
        endpoint("role", CLAUDE, f"aws_role_arn: {ROLE}\n          aws_region: {REGION}"),
        endpoint("chain", CLAUDE, "{}"),
        endpoint("denied-role", CLAUDE, f"aws_role_arn: {ROLE}/denied\n          aws_region: {REGION}"),
        endpoint("wrong-secret", CLAUDE, KEYS_AUTH.replace(KEYS["secret"], "not-the-secret")),
        endpoint("tools", "tools"),
        endpoint("completions", "amazon.titan-text-premier-v1:0", kind="completions"),
        endpoint("titan", "amazon.titan-embed-text-v2:0", kind="embeddings"),
        endpoint("cohere", "cohere.embed-english-v3", kind="embeddings"),
        endpoint(
            "titan-bearer", "amazon.titan-embed-text-v2:0", f"aws_bearer_token: {BEARER}", kind="embeddings"
        ),
        *(endpoint(name, name) for name in ("err-400", "err-429", "err-500", "err-503", "malformed", "slow")),
        endpoint("stream-exception", "stream-exception"),
    ]
    env = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": upstream.url,
        "AWS_ENDPOINT_URL_STS": upstream.url,
        "AWS_ACCESS_KEY_ID": ENV_KEYS["id"],
        "AWS_SECRET_ACCESS_KEY": ENV_KEYS["secret"],
        "AWS_DEFAULT_REGION": REGION,
        # nothing from this machine's AWS setup may leak in
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "2",
    }
    process = launch(tmp_path_factory.mktemp("bedrock"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sdk(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def sent(upstream, path_end):
    return [r for r in upstream.requests if r.path.endswith(path_end)]


def credential(request) -> str:
    return request.headers["Authorization"].split("Credential=")[1].split("/")[0]


# -- chat ---------------------------------------------------------------------------------


def test_chat_with_keys_signs_and_translates(http, upstream):
    response = invoke(
        http, "chat", {**CHAT, "temperature": 0.7, "max_tokens": 50, "stop": ["END"], "top_p": 0.9}
    )
    assert response.status_code == 200, response.text
    request = upstream.last()
    assert request.path == f"/model/{CLAUDE}/converse"
    assert request.headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={KEYS['id']}/{datetime.datetime.now(datetime.UTC):%Y%m%d}/{REGION}/bedrock/"
    )
    assert request.headers["X-Amz-Security-Token"] == KEYS["token"]
    assert request.headers["Content-Type"] == "application/json" and "X-Amz-Date" in request.headers
    assert request.body == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.7, "topP": 0.9, "stopSequences": ["END"]},
    }
    data = response.json()
    assert data["id"].startswith("chatcmpl-") and data["object"] == "chat.completion"
    assert data["model"] == CLAUDE and data["provider"] == "bedrock" and isinstance(data["created"], int)
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "".join(WORDS), "tool_calls": None, "refusal": None},
            "finish_reason": "stop",
        }
    ]
    assert data["usage"] == EXPECTED_USAGE
    assert KEYS["secret"] not in response.text


def test_chat_request_mapping_fixes_mlflow_drops(http, upstream):
    image = "data:image/png;base64,iVBORw0KGgo="
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "3C"},
            {"role": "user", "content": "Compare them.", "name": "ada"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}},
        },
        "top_k": 40,
        "max_completion_tokens": 64,
        "seed": 7,
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
    }
    assert invoke(http, "chat", body).status_code == 200
    assert upstream.last().body == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Weather?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Oslo"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
                    {"toolResult": {"toolUseId": "call_2", "content": [{"text": "3C"}]}},
                    {"text": "Compare them."},
                ],
            },
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                        "description": "Weather for a city",
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "get_weather"}},
        },
        "additionalModelRequestFields": {"top_k": 40},
        "outputConfig": {
            "textFormat": {
                "type": "json_schema",
                "structure": {"jsonSchema": {"schema": '{"type":"object"}', "name": "answer"}},
            }
        },
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
    }


@pytest.mark.parametrize(("choice", "expected"), [("auto", {"auto": {}}), ("required", {"any": {}})])
def test_tool_choice_modes(http, upstream, choice, expected):
    assert invoke(http, "chat", {**CHAT, "tools": [WEATHER_TOOL], "tool_choice": choice}).status_code == 200
    assert upstream.last().body["toolConfig"]["toolChoice"] == expected
    assert invoke(http, "chat", {**CHAT, "tools": [WEATHER_TOOL], "tool_choice": "none"}).status_code == 200
    assert "toolConfig" not in upstream.last().body


def test_invalid_tool_calls_and_images_are_422(http):
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    response = invoke(
        http, "chat", {"messages": [{"role": "assistant", "tool_calls": [call]}, *CHAT["messages"]]}
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": "Invalid assistant tool call arguments: not valid JSON for tool_call_id=c1, tool_name=f."
    }
    web_image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    response = invoke(http, "chat", {"messages": [{"role": "user", "content": [web_image]}]})
    assert response.status_code == 422 and "data URLs" in response.json()["detail"]


def test_tool_use_answer_becomes_tool_calls(sdk, upstream):
    completion = sdk.chat.completions.create(model="tools", messages=CHAT["messages"], tools=[WEATHER_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "tooluse_abc",
        "get_weather",
        {"city": "Paris"},
    )


def test_n_choices_are_concurrent_converse_calls(http, upstream):
    before = len(sent(upstream, "/converse"))
    response = invoke(http, "chat", {**CHAT, "n": 2})
    assert response.status_code == 200
    assert len(sent(upstream, "/converse")) == before + 2
    assert "n" not in upstream.last().body
    data = response.json()
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert data["usage"]["prompt_tokens"] == 30 and data["usage"]["total_tokens"] == 40


def test_inference_profile_arn_path_is_signed_as_sent(http, upstream):
    assert invoke(http, "profile", CHAT).status_code == 200
    # ':' literal, '/' encoded: the path signed is the path sent (the emulation checked the signature)
    assert upstream.raw_paths[-1] == f"/model/{PROFILE_ARN.replace('/', '%2F')}/converse"
    assert invoke(http, "profile", {**CHAT, "stream": True}).status_code == 200


# -- auth modes ---------------------------------------------------------------------------


def test_bearer_token_auth(http, upstream):
    response = invoke(http, "bearer", CHAT)
    assert response.status_code == 200
    request = upstream.last()
    assert request.headers["Authorization"] == f"Bearer {BEARER}"
    assert "X-Amz-Date" not in request.headers and "X-Amz-Security-Token" not in request.headers
    # unlike MLflow, bearer auth streams and embeds too
    with http.stream("POST", "/endpoints/bearer/invocations", json={**CHAT, "stream": True}) as stream:
        assert stream.status_code == 200 and stream.read().endswith(b"data: [DONE]\n\n")
    assert invoke(http, "titan-bearer", {"input": "one"}).status_code == 200


def test_role_is_assumed_once_for_many_requests(http, upstream):
    for _ in range(3):
        assert invoke(http, "role", CHAT).status_code == 200
    with http.stream("POST", "/endpoints/role/invocations", json={**CHAT, "stream": True}) as stream:
        assert stream.status_code == 200 and stream.read().endswith(b"data: [DONE]\n\n")
    assert len(upstream.assumed) == 1
    assert upstream.assumed[0] == {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": "ai-gateway-bedrock",
        "DurationSeconds": "900",
    }
    sts_call = next(r for r in upstream.requests if r.path == "/")
    assert credential(sts_call) == ENV_KEYS["id"]  # STS is called with the default chain
    issued = credential(upstream.last())
    assert (
        issued.startswith("ASIA")
        and upstream.credentials[issued][1] == upstream.last().headers["X-Amz-Security-Token"]
    )


def test_denied_assume_role_keeps_sts_status_and_message(http, upstream):
    response = invoke(http, "denied-role", CHAT)
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "AWS STS AssumeRole failed: User: arn:aws:iam::123456789012:user/gw is not authorized to perform: "
        f"sts:AssumeRole on resource: {ROLE}/denied"
    )


def test_assumed_role_is_refreshed_only_near_expiry(monkeypatch):
    class FakeSts:
        calls = 0

        def assume_role(self, **kwargs):
            FakeSts.calls += 1
            expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
                seconds=kwargs["DurationSeconds"]
            )
            issued = {"AccessKeyId": f"ASIA{FakeSts.calls}", "SecretAccessKey": "s", "SessionToken": "t"}
            return {"Credentials": {**issued, "Expiration": expires}}

    source = AssumedRoleCredentials(ROLE, 900, REGION)
    source._sts = FakeSts()

    async def three_gets():
        return [(await source.get()).access_key for _ in range(3)]

    assert asyncio.run(three_gets()) == ["ASIA1"] * 3
    # a quarter of the lifetime (at most five minutes) before expiry, it is assumed again
    monkeypatch.setattr(time, "time", lambda real=time.time: real() + 900 - 200)
    assert asyncio.run(three_gets()) == ["ASIA2"] * 3


def test_bearer_token_from_the_environment_in_base_mode():
    auth = BedrockAuth(parse_aws_config({}), REGION, environ={"AWS_BEARER_TOKEN_BEDROCK": "env-key"})
    headers = asyncio.run(
        auth.headers("https://x/model/m/converse", {"Content-Type": "application/json"}, b"{}", "e")
    )
    assert auth.mode == "bearer" and headers == {
        "Content-Type": "application/json",
        "Authorization": "Bearer env-key",
    }


def test_default_chain_uses_environment_credentials(http, upstream):
    assert invoke(http, "chain", CHAT).status_code == 200
    request = upstream.last()
    assert credential(request) == ENV_KEYS["id"] and "X-Amz-Security-Token" not in request.headers


def test_wrong_secret_gets_bedrocks_signature_error(http, upstream):
    failures = upstream.signature_failures
    response = invoke(http, "wrong-secret", CHAT)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("The request signature we calculated does not match")
    assert upstream.signature_failures == failures + 1 and "not-the-secret" not in response.text


# -- completions and embeddings -----------------------------------------------------------


def test_completions_are_one_converse_turn(http, upstream):
    response = invoke(http, "completions", {"prompt": "Say hi", "temperature": 1.0, "max_tokens": 20})
    assert response.status_code == 200
    request = upstream.last()
    assert request.path == "/model/amazon.titan-text-premier-v1:0/converse"
    # Titan's 0-1 range: MLflow's halving is kept
    assert request.body == {
        "messages": [{"role": "user", "content": [{"text": "Say hi"}]}],
        "inferenceConfig": {"maxTokens": 20, "temperature": 0.5},
    }
    data = response.json()
    assert data["object"] == "text_completion" and data["id"].startswith("cmpl-")
    assert data["choices"] == [{"index": 0, "text": "".join(WORDS), "finish_reason": "stop"}]
    assert data["usage"] == {"prompt_tokens": 15, "completion_tokens": 5, "total_tokens": 20}


def test_json_schema_format_without_its_schema_is_a_422(http):
    response = invoke(http, "chat", {**CHAT, "response_format": {"type": "json_schema"}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "response_format", "json_schema"]


def test_completions_stream(http):
    with http.stream(
        "POST", "/endpoints/completions/invocations", json={"prompt": "x", "stream": True}
    ) as response:
        events = [e for e in response.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "".join(WORDS)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert check_stream_contract(chunks)["total_tokens"] == 20


def test_titan_embeddings_one_call_per_input(http, upstream):
    before = len(sent(upstream, "/invoke"))
    response = invoke(http, "titan", {"input": ["one two", "three"], "dimensions": 256})
    assert response.status_code == 200
    calls = sent(upstream, "/invoke")[before:]
    assert all(c.path == "/model/amazon.titan-embed-text-v2:0/invoke" for c in calls)
    assert sorted(c.body["inputText"] for c in calls) == ["one two", "three"]
    assert all(c.body == {"inputText": c.body["inputText"], "dimensions": 256} for c in calls)
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.7, -0.5, 0.25], "index": 0},
            {"object": "embedding", "embedding": [0.5, -0.5, 0.25], "index": 1},
        ],
        "model": "amazon.titan-embed-text-v2:0",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def test_cohere_embeddings_one_call(sdk, upstream):
    result = sdk.embeddings.create(model="cohere", input=["A", "B"])
    request = upstream.last()
    assert request.path == "/model/cohere.embed-english-v3/invoke"
    assert request.body == {"texts": ["A", "B"], "input_type": "search_document"}
    assert [d.embedding for d in result.data] == [[0.0, 0.5], [1.0, 0.5]]


def test_token_array_embeddings_are_422(http):
    assert invoke(http, "titan", {"input": [1, 2, 3]}).status_code == 422


# -- streaming ----------------------------------------------------------------------------


def stream_events(http, name, body):
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        return [e for e in response.read().decode().split("\n\n") if e]


def test_chat_stream_from_binary_event_stream(http, upstream):
    events = stream_events(http, "chat", CHAT)
    assert upstream.last().path == f"/model/{CLAUDE}/converse-stream"
    assert upstream.last().headers["Accept"] == "application/vnd.amazon.eventstream"
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == "".join(
        WORDS
    )
    # Bedrock reports usage after the stop event: it rides on the finish chunk (OpenAI's contract)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert check_stream_contract(chunks) == EXPECTED_USAGE
    asked = [json.loads(e[6:]) for e in stream_events(http, "chat", {**CHAT, **INCLUDE_USAGE})[:-1]]
    assert check_stream_contract(asked, include_usage=True) == EXPECTED_USAGE


def test_streamed_tool_calls_through_the_sdk(sdk):
    stream = sdk.chat.completions.create(
        model="tools", messages=CHAT["messages"], tools=[WEATHER_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += (call.function.name or "") if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
    assert finish == "tool_calls"
    assert calls == {0: {"id": "tooluse_abc", "name": "get_weather", "arguments": '{"city": "Paris"}'}}


def test_exception_mid_stream_becomes_an_error_event(http):
    events = stream_events(http, "stream-exception", CHAT)
    assert events[-1] != "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["delta"]["content"] == WORDS[0]
    error = json.loads(events[-1][6:])["error"]
    assert error["code"] == 429
    assert error["message"] == "throttlingException: Too many tokens, please wait before trying again."


def test_stream_refused_upstream_is_a_real_status(http):
    response = invoke(http, "err-400", {**CHAT, "stream": True})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed input request")


def test_streaming_n_above_one_is_422(http):
    assert invoke(http, "chat", {**CHAT, "stream": True, "n": 2}).status_code == 422


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("err-400", 400, "Malformed input request: #: extraneous key [foo] is not permitted"),
        ("err-429", 429, "Too many requests, please wait before trying again."),
        ("err-500", 500, "The server encountered an internal error."),
        ("err-503", 503, "Bedrock is unable to process your request."),
    ],
)
def test_bedrock_errors_keep_status_and_message(http, name, status, message):
    response = invoke(http, name, CHAT)
    detail = upstream_detail(name, "bedrock", status, message)
    assert response.status_code == status and response.json() == {"detail": detail}


def test_v1_errors_raise_the_right_sdk_exception(sdk):
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="err-429", messages=CHAT["messages"])
    assert caught.value.message.endswith("- Too many requests, please wait before trying again.")


def test_malformed_answer_is_502(http):
    response = invoke(http, "malformed", CHAT)
    assert response.status_code == 502 and "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    detail = response.json()["detail"]
    assert "endpoint 'slow'" in detail and "bedrock" in detail


# -- units: config, endpoints, signing, event-stream decoding ------------------------------


def test_aws_config_modes_in_mlflows_order():
    assert parse_aws_config({"aws_bearer_token": "t", "aws_role_arn": "r"}).mode == "bearer"
    assert parse_aws_config({"aws_role_arn": "r", "aws_access_key_id": "a"}).mode == "role"
    assert parse_aws_config({"aws_access_key_id": "a", "aws_secret_access_key": "s"}).mode == "keys"
    assert parse_aws_config({"aws_region": "eu-west-1"}).mode == "base"
    with pytest.raises(ConfigError, match="aws_secret_access_key: Field required"):
        parse_aws_config({"aws_access_key_id": "a"})


def test_bearer_without_region_is_refused_at_load(monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    with pytest.raises(ConfigError, match="aws_region_name is required for Bedrock API key authentication"):
        parse_config("endpoints:" + endpoint("b", CLAUDE, "aws_bearer_token: t"))


def test_endpoint_overrides_follow_the_aws_sdks():
    assert runtime_endpoint("eu-west-1", {}) == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert runtime_endpoint("cn-north-1", {}) == "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"
    both = {"AWS_ENDPOINT_URL": "http://global:1/", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://bedrock:2"}
    assert runtime_endpoint("us-east-1", both) == "http://bedrock:2"
    assert runtime_endpoint("us-east-1", {"AWS_ENDPOINT_URL": "http://global:1/"}) == "http://global:1"
    ignored = {**both, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert runtime_endpoint("us-east-1", ignored) == "https://bedrock-runtime.us-east-1.amazonaws.com"


def test_signature_matches_the_aws_sigv4_test_suite():
    """post-vanilla from AWS's SigV4 test suite, signed through our `sign`."""
    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
    when = datetime.datetime(2015, 8, 30, 12, 36, 0)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        headers = sign(credentials, "us-east-1", "https://example.amazonaws.com/", {}, b"", service="service")
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    )


def test_event_stream_parser_agrees_with_botocore_at_every_split():
    wire = b"".join(stream_frames("tools"))
    reference = EventStreamBuffer()
    reference.add_data(wire)
    expected = [(dict(m.headers), m.payload) for m in reference]
    assert len(expected) == len(stream_frames("tools"))
    for cut in range(0, len(wire), 7):
        parser = EventStreamParser()
        assert parser.feed(wire[:cut]) + parser.feed(wire[cut:]) == expected
        assert parser.buffered() == 0


def test_event_stream_parser_rejects_bad_crcs():
    good = event("messageStart", {"role": "assistant"})
    bad_prelude = good[:8] + bytes([good[8] ^ 1]) + good[9:]
    bad_message = good[:-1] + bytes([good[-1] ^ 1])
    for wire in (bad_prelude, bad_message):
        with pytest.raises(EventStreamError, match="CRC mismatch"):
            EventStreamParser().feed(wire)
    assert issubclass(EventStreamError, NativeError)
    frame = encode_message({":message-type": "event"}, b"{}")
    assert zlib.crc32(frame[:-4]).to_bytes(4, "big") == frame[-4:]
    assert EventStreamParser().feed(frame) == [({":message-type": "event"}, b"{}")]

"""The standard clients, unmodified, against one gateway in front of four provider families.

Each client is used the way its documentation shows: the `openai` SDK's naive stream loop and
its `chat.completions.stream()` helper with tools (sync and async), LangChain's `OpenAI`
completions model (which sends `prompt` as a list), and MLflow's deployments client. The
upstreams are the wire-format emulations of OpenAI, Anthropic, Gemini and Bedrock on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from langchain_openai import OpenAI as LangChainOpenAI
from mlflow.deployments import get_deploy_client

from tests.conftest import launch
from tests.providers.anthropic_upstream import AnthropicUpstream
from tests.providers.bedrock_upstream import REGION, BedrockUpstream
from tests.providers.gemini_upstream import GoogleUpstream

PROVIDERS = ["openai", "anthropic", "gemini", "bedrock"]
HI = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
AWS_KEYS = ("AKIDSDKEXAMPLE", "sdk-secret-key")


def _endpoint(name: str, kind: str, provider: str, model: str, config: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: {provider}
      name: "{model}"
      config: {config}
"""


@pytest.fixture(scope="module")
def upstreams():
    servers = {
        "anthropic": AnthropicUpstream().start(),
        "gemini": GoogleUpstream().start(),
        "bedrock": BedrockUpstream().start(),
    }
    servers["bedrock"].credentials[AWS_KEYS[0]] = (AWS_KEYS[1], None)
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, upstreams, tmp_path_factory):
    openai_config = f"{{openai_api_key: sk-test-secret, openai_api_base: {upstream.base}}}"
    anthropic_config = (
        f"{{anthropic_api_key: sk-ant-test, anthropic_api_base: {upstreams['anthropic'].base}}}"
    )
    gemini_config = f"{{gemini_api_key: gm-key, gemini_api_base: {upstreams['gemini'].url}/v1beta/models}}"
    bedrock_config = (
        f"{{aws_config: {{aws_access_key_id: {AWS_KEYS[0]}, aws_secret_access_key: {AWS_KEYS[1]}, "
        f"aws_region: {REGION}}}}}"
    )
    claude = "anthropic.claude-3-haiku-20240307-v1:0"
    endpoints = [
        _endpoint("openai-chat", "chat", "openai", "gpt-4o-mini", openai_config),
        _endpoint("openai-tools", "chat", "openai", "gpt-4o-mini", openai_config),
        _endpoint("openai-completions", "completions", "openai", "gpt-3.5-turbo-instruct", openai_config),
        _endpoint("anthropic-chat", "chat", "anthropic", "claude-text", anthropic_config),
        _endpoint("anthropic-tools", "chat", "anthropic", "claude-tools", anthropic_config),
        _endpoint("anthropic-completions", "completions", "anthropic", "claude-text", anthropic_config),
        _endpoint("gemini-chat", "chat", "gemini", "gemini-2.0-flash", gemini_config),
        _endpoint("gemini-tools", "chat", "gemini", "gemini-tools", gemini_config),
        _endpoint("gemini-completions", "completions", "gemini", "gemini-2.0-flash", gemini_config),
        _endpoint("bedrock-chat", "chat", "bedrock", claude, bedrock_config),
        _endpoint("bedrock-tools", "chat", "bedrock", "tools", bedrock_config),
        _endpoint(
            "bedrock-completions", "completions", "bedrock", "amazon.titan-text-premier-v1:0", bedrock_config
        ),
    ]
    env = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": upstreams["bedrock"].url,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    process = launch(tmp_path_factory.mktemp("sdk-clients"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sdk(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


# -- the openai SDK -----------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_naive_stream_loop_sees_the_whole_answer(sdk, provider):
    answer = sdk.chat.completions.create(model=f"{provider}-chat", messages=HI)
    text = ""
    stream = sdk.chat.completions.create(model=f"{provider}-chat", messages=HI, stream=True)
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""  # IndexError on a usage-only chunk
    assert text == answer.choices[0].message.content and text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_usage_chunk_comes_last_when_asked(sdk, provider):
    chunks = list(
        sdk.chat.completions.create(
            model=f"{provider}-chat", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert all(chunk.choices and chunk.usage is None for chunk in chunks[:-1])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_helper_with_tools(sdk, provider):
    with sdk.chat.completions.stream(model=f"{provider}-tools", messages=HI, tools=[WEATHER_TOOL]) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_async_stream_helper_with_tools(gateway, provider):
    async def run():
        async with (
            openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0) as client,
            client.chat.completions.stream(
                model=f"{provider}-tools", messages=HI, tools=[WEATHER_TOOL]
            ) as stream,
        ):
            async for _ in stream:
                pass
            return await stream.get_final_completion()

    final = asyncio.run(run())
    call = final.choices[0].message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)


# -- LangChain ----------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_langchain_completions_model(gateway, provider):
    llm = LangChainOpenAI(
        base_url=f"{gateway.url}/v1", api_key="unused", model=f"{provider}-completions", max_retries=0
    )
    text = llm.invoke("Say hello")  # LangChain sends prompt: ["Say hello"]
    assert text
    assert "".join(llm.stream("Say hello")) == text
    # several prompts go in one request; providers without prompt lists answer each in turn
    result = llm.generate(["Say hello", "Say hello again"])
    assert [len(generations) for generations in result.generations] == [1, 1]
    assert all(generations[0].text for generations in result.generations)


# -- MLflow's deployments client ----------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_mlflow_deployments_client(gateway, provider):
    client = get_deploy_client(gateway.url)
    chat = client.predict(endpoint=f"{provider}-chat", inputs={"messages": HI})
    assert chat["choices"][0]["message"]["content"]
    assert chat["provider"] == provider
    completion = client.predict(endpoint=f"{provider}-completions", inputs={"prompt": "Say hello"})
    assert completion["choices"][0]["text"]
    assert client.get_endpoint(f"{provider}-chat").endpoint_type == "llm/v1/chat"


# -- the OpenAI wire format, checked with the SDK's own models (validating, not just parsing) ----
@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_and_chunks_validate_against_openai_models(gateway, provider):
    from openai.types import Completion
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    with httpx.Client(base_url=f"{gateway.url}/v1", timeout=10) as http:
        chat = http.post("/chat/completions", json={"model": f"{provider}-chat", "messages": HI}).json()
        ChatCompletion.model_validate(chat, strict=False)
        completion = http.post(
            "/completions", json={"model": f"{provider}-completions", "prompt": "hi"}
        ).json()
        Completion.model_validate(completion)
        for model in (f"{provider}-chat", f"{provider}-tools"):
            body = {"model": model, "messages": HI, "stream": True, "tools": [WEATHER_TOOL]}
            with http.stream("POST", "/chat/completions", json=body) as response:
                events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]"
            for event in events[:-1]:
                ChatCompletionChunk.model_validate(json.loads(event))
        body = {"model": f"{provider}-completions", "prompt": "hi", "stream": True}
        with http.stream("POST", "/completions", json=body) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        for event in events[:-1]:
            chunk = json.loads(event)
            # OpenAI streams `finish_reason: null` before the last chunk; the SDK's model lacks it
            chunk["choices"] = [
                {**choice, "finish_reason": choice["finish_reason"] or "stop"} for choice in chunk["choices"]
            ]
            Completion.model_validate(chunk)

"""One config with every provider MLflow knows, for every endpoint type: it loads (MLflow's own
loader agrees), start-up warns about each endpoint MLflow loads but cannot serve, and a call to
each endpoint gets MLflow's answer: its 501 message where the provider cannot serve the type, a
real answer where the emulated upstream can give one, and otherwise a clear error that names
the endpoint (every real provider host is behind a proxy that refuses, so nothing leaves the
machine). No call is answered with a 500.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import free_port, launch

KINDS = ("chat", "completions", "embeddings")
# what every provider's MLflow config holds (spec §2.4.1), the keys literal
CONFIGS = {
    "openai": "{openai_api_key: sk-test, openai_api_base: OPENAI_BASE}",
    "azure": "{openai_api_key: sk-test, openai_api_type: azure, openai_api_base: AZURE_BASE, "
    "openai_deployment_name: dep, openai_api_version: '2024-06-01'}",
    "anthropic": "{anthropic_api_key: sk-ant-test}",
    "cohere": "{cohere_api_key: co-test}",
    "ai21labs": "{ai21labs_api_key: ai21-test}",
    "mlflow-model-serving": "{model_server_url: 'http://127.0.0.1:REFUSED'}",
    "mosaicml": "{mosaicml_api_key: mm-test, mosaicml_api_base: OPENAI_BASE}",
    "huggingface-text-generation-inference": "{hf_server_url: 'http://127.0.0.1:REFUSED'}",
    "palm": "{palm_api_key: palm-test}",
    "gemini": "{gemini_api_key: gm-test}",
    "bedrock": "{aws_config: {aws_access_key_id: AKIDTEST, aws_secret_access_key: s, aws_region: us-east-1}}",
    "amazon-bedrock": "{aws_config: {aws_access_key_id: AKIDTEST, aws_secret_access_key: s, aws_region: us-east-1}}",
    "databricks": "{host: 'http://127.0.0.1:REFUSED', token: dapi-test}",
    "databricks-model-serving": "{host: 'http://127.0.0.1:REFUSED', token: dapi-test}",
    "mistral": "{mistral_api_key: mi-test}",
    "togetherai": "{togetherai_api_key: tg-test}",
    "litellm": "{litellm_provider: openai, litellm_auth_config: {api_key: sk-test, api_base: OPENAI_BASE, max_retries: 0}}",
    "groq": "{api_key: gq-test, api_base: OPENAI_BASE}",
    "deepseek": "{api_key: ds-test, api_base: OPENAI_BASE}",
    "xai": "{api_key: xai-test, api_base: OPENAI_BASE}",
    "openrouter": "{api_key: or-test, api_base: OPENAI_BASE}",
    "ollama": "{api_base: OPENAI_BASE}",
    "vertex_ai": "{vertex_project: proj, vertex_location: us-central1}",
    "portkey": "{api_key: pk-test, api_base: OPENAI_BASE}",
    "sap-ai-core": "{}",
    "typesafe": "{typesafe_api_key: ts-test}",
}
MODELS = {
    "ai21labs": "j2-mid",
    "mosaicml": "llama2-70b-chat",
    "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
    "amazon-bedrock": "amazon.titan-embed-text-v2:0",
    "gemini": "gemini-2.5-flash",
    "palm": "chat-bison",
    "vertex_ai": "gemini-2.5-flash",
}
DISPLAY = {
    "anthropic": "Anthropic",
    "groq": "Groq",
    "deepseek": "DeepSeek",
    "databricks": "Databricks",
    "databricks-model-serving": "Databricks",
    "huggingface-text-generation-inference": "Hugging Face Text Generation Inference",
    "ai21labs": "AI21Labs",
    "portkey": "Portkey",
    "litellm": "LiteLLM",
    "typesafe": "TypeSafe",
    "sap-ai-core": "SAP AI Core",
}
# MLflow's own matrix (spec §7.0), where this gateway agrees: (provider, kind) it cannot serve
UNSERVED = {
    ("anthropic", "embeddings"),
    ("groq", "completions"),
    ("deepseek", "completions"),
    ("databricks", "completions"),
    ("databricks-model-serving", "completions"),
    ("huggingface-text-generation-inference", "embeddings"),
    ("ai21labs", "embeddings"),
    ("portkey", "completions"),
    ("litellm", "completions"),
    ("typesafe", "chat"),
    ("typesafe", "completions"),
    ("typesafe", "embeddings"),
    ("sap-ai-core", "chat"),
    ("sap-ai-core", "completions"),
    ("sap-ai-core", "embeddings"),
}
# served by the emulated OpenAI upstream, so a real answer comes back
ANSWERED = {(provider, kind) for provider in ("openai", "azure") for kind in KINDS} | {
    (provider, kind)
    for provider in ("groq", "deepseek", "xai", "openrouter", "ollama", "portkey", "litellm", "mosaicml")
    for kind in KINDS
    if (provider, kind) not in UNSERVED
}
BODIES = {
    "chat": {"messages": [{"role": "user", "content": "hi"}]},
    "completions": {"prompt": "hi", "max_tokens": 5},
    "embeddings": {"input": "hi"},
}


def name_of(provider: str, kind: str) -> str:
    return f"{provider}-{kind}"


def config_text(openai_base: str, refused: int) -> str:
    lines = ["endpoints:"]
    for provider, config in CONFIGS.items():
        config = config.replace("OPENAI_BASE", openai_base).replace("REFUSED", str(refused))
        config = config.replace("AZURE_BASE", openai_base.removesuffix("/v1"))
        for kind in KINDS:
            model = MODELS.get(provider, "gpt-4o-mini")
            if provider == "amazon-bedrock" and kind != "embeddings":
                model = MODELS["bedrock"]
            lines.append(
                f"  - name: {name_of(provider, kind)}\n    endpoint_type: llm/v1/{kind}\n"
                f"    model:\n      provider: {provider}\n      name: {model}\n      config: {config}"
            )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def refused_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def text(upstream, refused_port) -> str:
    return config_text(upstream.base, refused_port)


@pytest.fixture(scope="module")
def gateway(text, refused_port, tmp_path_factory):
    proxy = f"http://127.0.0.1:{refused_port}"
    env = {
        # every real provider host goes through a proxy that refuses: nothing leaves the machine
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "NO_PROXY": "127.0.0.1,localhost",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": proxy,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/adc.json",
        "GCE_METADATA_HOST": f"127.0.0.1:{refused_port}",
        "GCE_METADATA_IP": f"127.0.0.1:{refused_port}",
        "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "5",
    }
    process = launch(tmp_path_factory.mktemp("every-provider"), text, env=env)
    yield process
    process.stop()


def test_mlflows_own_loader_accepts_the_config(text, tmp_path, monkeypatch):
    from mlflow.gateway.config import _load_gateway_config

    path = tmp_path / "mlflow.yaml"
    path.write_text(text)
    loaded = _load_gateway_config(path)
    assert len(loaded.endpoints) == len(CONFIGS) * len(KINDS)


def test_start_up_warns_once_per_unservable_endpoint(gateway):
    warnings = [line for line in gateway.log().splitlines() if "cannot be served and answers 501" in line]
    named = sorted(line.split("endpoint '")[1].split("'")[0] for line in warnings)
    expected = {name_of(p, k) for p, k in UNSERVED}
    # Vertex AI has its own per-model reasons; the Gemini model here serves all three types
    assert set(named) == expected and len(named) == len(expected)
    assert "sk-test" not in gateway.log()


@pytest.mark.parametrize("provider", list(CONFIGS))
@pytest.mark.parametrize("kind", KINDS)
def test_each_endpoint_answers(gateway, provider, kind):
    name = name_of(provider, kind)
    response = httpx.post(f"{gateway.url}/endpoints/{name}/invocations", json=BODIES[kind], timeout=30)
    if (provider, kind) in UNSERVED:
        assert response.status_code == 501, response.text
        detail = response.json()["detail"]
        if provider != "sap-ai-core" or kind != "chat":
            route = {"chat": "chat", "completions": "completions", "embeddings": "embeddings"}[kind]
            assert detail.startswith(
                f"The {route} route is not implemented for {DISPLAY[provider]} models"
            ), detail
    elif (provider, kind) in ANSWERED:
        assert response.status_code == 200, response.text
    else:
        # a real provider host: the refusing proxy gives a clear error that names the endpoint
        assert response.status_code in (502, 503, 504), response.text
        assert name in response.json()["detail"], response.text

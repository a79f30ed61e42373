"""Plugin providers (spec §8): a package installed with pip registers a provider class under the
entry-point group `gateway.providers`, and a real gateway serves it; name clashes, the exact-name
rule, MLFLOW_GATEWAY_ALLOWED_PROVIDERS and broken plugins are refused at load with a clear reason.

Every check runs in a subprocess with the plugin's install directory on PYTHONPATH, so this
process's own entry points (and the gateway's per-process plugin cache) stay untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

EXAMPLE = Path(__file__).parents[1] / "plugins" / "example_provider"
CHAT = {"messages": [{"role": "user", "content": "hello plugin"}]}
ECHO_CONFIG = """
endpoints:
  - name: echo
    endpoint_type: llm/v1/chat
    model:
      provider: {provider}
      name: echo-model
"""
OPENAI_ENDPOINT = """
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: sk-test
"""


def pip_install(source: Path, target: Path) -> Path:
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target)]
    subprocess.run([*command, str(source)], check=True, capture_output=True, timeout=120)
    return target


def make_package(directory: Path, name: str, entry_points: dict[str, dict[str, str]], module: str) -> Path:
    """A plugin package built by the example's stdlib-only backend."""
    directory.mkdir()
    groups = "".join(
        f'\n[project.entry-points."{group}"]\n' + "".join(f'"{k}" = "{v}"\n' for k, v in entries.items())
        for group, entries in entry_points.items()
    )
    (directory / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "build_backend"\nbackend-path = ["."]\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n{groups}'
    )
    (directory / f"{name.replace('-', '_')}.py").write_text(module)
    shutil.copy(EXAMPLE / "build_backend.py", directory)
    return directory


@pytest.fixture(scope="module")
def example_target(tmp_path_factory) -> Path:
    return pip_install(EXAMPLE, tmp_path_factory.mktemp("example-plugin"))


@pytest.fixture(scope="module")
def clash_target(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clash-plugin")
    source = make_package(
        root / "src",
        "clash-plugin",
        {"gateway.providers": {"OpenAI": "clash_plugin:Impostor"}},
        "from gateway.providers.base import Provider\n\nclass Impostor(Provider):\n    display_name = 'X'\n",
    )
    return pip_install(source, root / "target")


@pytest.fixture(scope="module")
def broken_target(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("broken-plugin")
    entries = {
        "gateway.providers": {"not-a-class": "broken_plugin:NOT_A_PROVIDER", "missing": "nowhere:Thing"},
        "mlflow.gateway.providers": {"mlflow-only": "broken_plugin:NOT_A_PROVIDER"},
    }
    source = make_package(root / "src", "broken-plugin", entries, "NOT_A_PROVIDER = 42\n")
    return pip_install(source, root / "target")


def with_path(*targets: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(str(t) for t in targets), **extra}


def validate(tmp_path: Path, config: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    environment = {**os.environ, **env}
    command = [sys.executable, "-m", "gateway", "validate", str(path)]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)


@pytest.fixture(scope="module")
def gateway(example_target, tmp_path_factory):
    from tests.conftest import launch

    process = launch(
        tmp_path_factory.mktemp("plugin-gateway"),
        ECHO_CONFIG.format(provider="echo"),  # no `config:` at all
        env=with_path(example_target),
    )
    yield process
    process.stop()


def test_installed_plugin_serves_a_chat(gateway):
    response = httpx.post(f"{gateway.url}/endpoints/echo/invocations", json=CHAT, timeout=10)
    assert response.status_code == 200
    reply = response.json()
    assert reply["provider"] == "echo" and reply["model"] == "echo-model"
    assert reply["choices"][0]["message"]["content"] == "echo: hello plugin"
    assert reply["choices"][0]["finish_reason"] == "stop"


def test_plugin_streams(gateway):
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/endpoints/echo/invocations", json=body, timeout=10) as response:
        assert response.status_code == 200
        events = [e for e in response.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "echo: hello plugin"


def test_plugin_errors_keep_their_status(gateway):
    body = {"messages": [{"role": "user", "content": "  "}]}
    response = httpx.post(f"{gateway.url}/endpoints/echo/invocations", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"detail": "There is nothing to echo: send a user message with text."}
    stream = httpx.post(
        f"{gateway.url}/endpoints/echo/invocations", json={**body, "stream": True}, timeout=10
    )
    assert stream.status_code == 400  # raised before the stream started: a real status


def test_plugin_through_the_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="echo", messages=CHAT["messages"])
    assert reply.choices[0].message.content == "echo: hello plugin"


def test_plugin_endpoint_is_listed(gateway):
    listed = httpx.get(f"{gateway.url}/api/2.0/endpoints/echo", timeout=10).json()
    assert listed["model"]["provider"] == "echo"


def test_plugin_name_must_match_exactly(example_target, tmp_path):
    result = validate(tmp_path, ECHO_CONFIG.format(provider="Echo"), with_path(example_target))
    assert result.returncode != 0
    assert "model.provider: The provider 'Echo' is not supported." in result.stderr


def test_plugin_config_is_validated(example_target, tmp_path):
    config = ECHO_CONFIG.format(provider="echo") + "      config: {prefix: 7}\n"
    result = validate(tmp_path, config, with_path(example_target))
    assert result.returncode != 0 and "model.config.prefix: Expected `str`, got `int`" in result.stderr
    config = ECHO_CONFIG.format(provider="echo").replace("llm/v1/chat", "llm/v1/embeddings")
    result = validate(tmp_path, config, with_path(example_target))
    assert result.returncode == 0
    assert "The embeddings route is not implemented for Echo models." in result.stderr


def test_allowed_providers_filters_plugins(example_target, tmp_path):
    refused = validate(
        tmp_path,
        ECHO_CONFIG.format(provider="echo"),
        with_path(example_target, MLFLOW_GATEWAY_ALLOWED_PROVIDERS="openai,anthropic"),
    )
    assert refused.returncode != 0
    assert "Provider 'echo' is not allowed by the current gateway provider policy." in refused.stderr
    allowed = validate(
        tmp_path,
        ECHO_CONFIG.format(provider="echo"),
        with_path(example_target, MLFLOW_GATEWAY_ALLOWED_PROVIDERS="openai, echo"),
    )
    assert allowed.returncode == 0, allowed.stderr


def test_name_clashing_with_a_built_in_stops_start_up(example_target, clash_target, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(ECHO_CONFIG.format(provider="echo"))
    environment = {**os.environ, **with_path(example_target, clash_target)}
    command = [sys.executable, "-m", "gateway", "start", "--config-path", str(path), "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=30)
    assert result.returncode != 0
    assert (
        "plugin provider 'OpenAI' (clash_plugin:Impostor, from clash-plugin 1.0) clashes with the "
        in result.stderr
    )
    assert "built-in provider 'openai'" in result.stderr


def test_built_in_names_need_no_plugin_lookup(clash_target, tmp_path):
    # a config of built-in providers never reads the plugin group, so it still loads
    result = validate(tmp_path, "endpoints:" + OPENAI_ENDPOINT, with_path(clash_target))
    assert result.returncode == 0, result.stderr


def test_broken_plugins_are_refused_with_the_reason(broken_target, tmp_path):
    env = with_path(broken_target)
    result = validate(tmp_path, ECHO_CONFIG.format(provider="not-a-class"), env)
    assert "is not a subclass of gateway.providers.base.Provider" in result.stderr
    result = validate(tmp_path, ECHO_CONFIG.format(provider="missing"), env)
    assert "plugin provider 'missing' (nowhere:Thing, from broken-plugin 1.0) failed to load" in result.stderr
    assert "ModuleNotFoundError" in result.stderr


def test_mlflow_plugins_are_named_but_not_loaded(broken_target, tmp_path):
    result = validate(tmp_path, ECHO_CONFIG.format(provider="mlflow-only"), with_path(broken_target))
    assert result.returncode != 0
    assert "The provider 'mlflow-only' is not supported." in result.stderr
    assert "MLflow gateway plugin named 'mlflow-only' is installed" in result.stderr

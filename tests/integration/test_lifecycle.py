"""Start-up validation, secrets, SIGTERM drain and process hygiene."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import GatewayProcess, free_port
from tests.integration.configs import MOCK_CHAT, openai_config, openai_endpoint

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_validate_reports_endpoint_and_field(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(openai_config("http://127.0.0.1:9/v1"))
    ok = run_cli("validate", str(good))
    assert ok.returncode == 0 and "3 endpoints" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        openai_config("http://x/v1").replace(
            "openai_api_key: sk-test-secret-key", "openai_api_key: $NOT_SET_ANYWHERE", 1
        )
    )
    result = run_cli("validate", str(bad))
    assert result.returncode == 2
    assert "endpoint 'chat'" in result.stderr
    assert "model.config.openai_api_key" in result.stderr
    assert "Environment variable 'NOT_SET_ANYWHERE' is not set" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "endpoints:\n  - name: a b\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n",
            "'a b' is invalid",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v2/chat\n    model: {provider: mock, config: {}}\n",
            "The route_type 'llm/v2/chat' is not supported.",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: nope, config: {}}\n",
            "The provider 'nope' is not supported.",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: openai}\n",
            "A config must be supplied",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: openai, config: {}}\n",
            "model.config.openai_api_key: Field required",
        ),
        (
            "endpoints:\n  - name: a\n    route_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n",
            "Use 'endpoint_type' instead.",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n    limit: {calls: 0, renewal_period: minute}\n",
            "Failed to parse the rate limit configuration",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n",
            "Duplicate names found",
        ),
        ("endpoints: [\n", "is not a valid yaml file"),
        ("routes: []\n", "endpoints: Field required"),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: openai, config: {openai_api_key: k, openai_api_type: azure}}\n",
            "must specify 'openai_api_base', 'openai_deployment_name', and 'openai_api_version'",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n"
            "routes:\n  - name: r\n    task_type: llm/v1/chat\n    destinations: [{name: a, traffic_percentage: 60}]\n",
            "the traffic percentage sum of destinations must be 100",
        ),
    ],
)
def test_bad_configs(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_start_refuses_bad_config_before_listening(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(openai_config("http://x/v1").replace("sk-test-secret-key", "$NOT_SET_ANYWHERE"))
    port = free_port()
    result = run_cli("start", "--config-path", str(path), "--port", str(port))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "endpoint 'chat'" in lines[0]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")


def test_config_path_from_env_and_key_file_newline_stripped(tmp_path, upstream):
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    config = openai_config(upstream.base).replace("sk-test-secret-key", str(key_file))
    path = tmp_path / "c.yaml"
    path.write_text(config)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "start", "--port", str(port), "--workers", "1"],
        env={**os.environ, "MLFLOW_GATEWAY_CONFIG": str(path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.post(f"{url}/endpoints/chat/invocations", json=CHAT).status_code == 200
        assert upstream.last().headers["Authorization"] == "Bearer sk-from-file"
    finally:
        proc.terminate()
        proc.wait(30)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_drains_in_flight_request_and_leaves_no_process(tmp_path, upstream):
    slow = openai_endpoint("slow", "chat", "slow-1500", upstream.base)
    path = tmp_path / "c.yaml"
    path.write_text(openai_config(upstream.base, slow))
    gateway = GatewayProcess(path, 2, None, []).wait_ready()
    result: dict[str, object] = {}

    def call() -> None:
        response = httpx.post(f"{gateway.url}/endpoints/slow/invocations", json=CHAT, timeout=30)
        result["status"] = response.status_code
        result["body"] = response.json()

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)
    gateway.proc.send_signal(signal.SIGTERM)
    caller.join(30)
    assert result.get("status") == 200, gateway.log()
    assert gateway.proc.wait(30) == 0
    deadline = time.monotonic() + 10
    while group_alive(gateway.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(gateway.proc.pid), "worker processes outlived the supervisor"
    gateway.stop()


@pytest.mark.parametrize("moment", [0.3, 0.8, "ready"])
def test_killed_supervisor_takes_its_workers_along(tmp_path, moment):
    """Whenever the supervisor dies, even while workers are still booting, no worker outlives it."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n"
    )
    gateway = GatewayProcess(path, 2, None, [])
    if moment == "ready":
        gateway.wait_ready()
    else:
        time.sleep(float(moment))
    gateway.proc.send_signal(signal.SIGKILL)
    gateway.proc.wait(10)
    deadline = time.monotonic() + 10
    while group_alive(gateway.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(gateway.proc.pid), "orphaned workers kept running"
    gateway.stop()


def test_a_gateway_stopped_while_its_workers_start_stops_promptly(tmp_path):
    # Granian loses a stop signal that reaches a worker between installing its handlers and
    # serving; the supervisor repeats it, so no worker waits for the drain deadline (30 s)
    for attempt in range(3):
        path = tmp_path / f"config-{attempt}.yaml"
        path.write_text(MOCK_CHAT)
        gateway = GatewayProcess(path, 4, None, [])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{gateway.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        started = time.monotonic()
        assert gateway.stop() == 0, gateway.log()
        assert time.monotonic() - started < 10, gateway.log()

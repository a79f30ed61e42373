"""One gateway per port: a second `gateway start` on a taken address fails at once, as MLflow's
gunicorn does, instead of sharing the port through SO_REUSEPORT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.configs import openai_config

MOCK_CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: mock, name: mock-chat, config: {}}
"""


def second_start(config: Path, port: int, host: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway", "start", "--config-path", str(config), "--port", str(port)]
    if host is not None:
        command += ["--host", host]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "GATEWAY_RELOAD_INTERVAL_SECONDS": "0"},
    )


def assert_refused(result: subprocess.CompletedProcess[str], address: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"Error: cannot listen on {address}: address already in use" in output, output
    # refused before Granian starts or spawns anything
    assert "Spawning worker" not in output and "Listening at" not in output, output


@contextmanager
def held_port(host: str, family: socket.AddressFamily = socket.AF_INET) -> Iterator[int]:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_second_gateway_on_same_port_fails_and_first_keeps_serving(start_gateway, tmp_path):
    first = start_gateway(openai_config("http://127.0.0.1:9/v1"), workers=2)
    other = tmp_path / "other.yaml"
    other.write_text(MOCK_CONFIG)
    started = time.monotonic()
    result = second_start(other, first.port)
    assert time.monotonic() - started < 15
    assert_refused(result, f"127.0.0.1:{first.port}")
    # 0.0.0.0 covers 127.0.0.1, so it is taken too
    assert_refused(second_start(other, first.port, "0.0.0.0"), f"0.0.0.0:{first.port}")
    for _ in range(10):  # every answer still comes from the first gateway's config
        response = httpx.get(f"{first.url}/api/2.0/endpoints/", timeout=5)
        assert response.status_code == 200
        assert {e["name"] for e in response.json()["endpoints"]} == {"chat", "completions", "embeddings"}
    assert httpx.get(f"{first.url}/health", timeout=5).status_code == 200
    assert first.proc.poll() is None


def test_gateway_on_all_interfaces_blocks_loopback(start_gateway, tmp_path):
    first = start_gateway(MOCK_CONFIG, extra_args=["--host", "0.0.0.0"])
    assert_refused(second_start(first.config_path, first.port), f"127.0.0.1:{first.port}")
    assert httpx.get(f"{first.url}/health", timeout=5).status_code == 200


def test_port_held_by_plain_socket_is_refused(tmp_path):
    config = tmp_path / "gw.yaml"
    config.write_text(MOCK_CONFIG)
    with held_port("127.0.0.1") as port:
        assert_refused(second_start(config, port), f"127.0.0.1:{port}")


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_host_serves_and_refuses_a_second_gateway(tmp_path):
    config = tmp_path / "gw.yaml"
    config.write_text(MOCK_CONFIG)
    with held_port("::1", socket.AF_INET6) as port:
        assert_refused(second_start(config, port, "::1"), f"[::1]:{port}")
    log = open(tmp_path / "gw.log", "wb")  # noqa: SIM115 (closed below)
    command = [sys.executable, "-m", "gateway", "start", "--config-path", str(config)]
    proc = subprocess.Popen(
        [*command, "--host", "::1", "--port", str(port), "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "gw.log").read_text()
            try:
                if httpx.get(f"http://[::1]:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gw.log").read_text()
            time.sleep(0.1)
        assert_refused(second_start(config, port, "::1"), f"[::1]:{port}")
        assert httpx.get(f"http://[::1]:{port}/health", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

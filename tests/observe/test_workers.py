"""The workers' metric files: private, kept across worker crashes (totals never go down, a dead
worker's in-flight requests stop counting), removed when the gateway stops. And what a terminal
shows; and traces off cost no import."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.integration.configs import openai_config, openai_endpoint
from tests.observe.support import samples, value

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def scrape(url: str) -> dict:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    return samples(response.text)


def wait_until(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_worker_crash_keeps_totals_and_drops_its_inflight(start_gateway, upstream):
    extra = openai_endpoint("slow", "chat", "slow-20000", upstream.base)
    gateway = start_gateway(openai_config(upstream.base, extra), workers=2)
    directory = next(Path("/dev/shm").glob(f"gateway-metrics-{gateway.proc.pid}-*"))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for _ in range(6):
        assert (
            httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT, timeout=10).status_code == 200
        )

    def slow() -> None:
        with contextlib.suppress(httpx.HTTPError):  # its worker is killed
            httpx.post(f"{gateway.url}/endpoints/slow/invocations", json=CHAT, timeout=30)

    chat = {"endpoint": "chat", "provider": "openai", "status": "200"}
    wait_until(lambda: value(scrape(gateway.url), "gateway_requests_total", **chat) == 6)
    threading.Thread(target=slow, daemon=True).start()
    wait_until(lambda: value(scrape(gateway.url), "gateway_inflight_requests") == 1)
    old = workers_of(gateway.proc.pid)
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: len(set(workers_of(gateway.proc.pid)) - set(old)) == 2)
    wait_until(lambda: _healthy(gateway.url))

    after = scrape(gateway.url)
    assert value(after, "gateway_inflight_requests") == 0
    assert value(after, "gateway_requests_total", endpoint="chat", provider="openai", status="200") == 6
    assert gateway.stop() == 0
    assert not directory.exists()


def test_a_terminal_gets_one_readable_line_per_request(upstream, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(openai_config(upstream.base))
    port = free_port()
    primary, secondary = pty.openpty()
    command = [sys.executable, "-m", "gateway", "start", "--config-path", str(config), "--port", str(port)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=secondary, stdin=subprocess.DEVNULL, start_new_session=True
    )
    os.close(secondary)
    output = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                return
            if not chunk:
                return
            output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url))
        response = httpx.post(f"{url}/endpoints/chat/invocations", json=CHAT, timeout=10)
        assert response.status_code == 200
        wait_until(lambda: b"/endpoints/chat/invocations 200" in output)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"the gateway did not stop:\n{output.decode(errors='replace')}") from None
        finally:
            os.close(primary)
    line = next(line for line in output.decode().splitlines() if "/endpoints/chat/invocations" in line)
    # 5 prompt and 6 completion tokens of gpt-4o-mini: $0.00000435
    assert re.search(
        r" POST /endpoints/chat/invocations 200 chat openai gpt-4o-mini \d+ms 5\+6 tok \$0\.000004$", line
    )
    assert "sk-test-secret-key" not in output.decode()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_traces_off_load_no_tracing_sdk(upstream, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(openai_config(upstream.base))
    # (redis-py imports parts of the OpenTelemetry API by itself when it is installed)
    probe = (
        "import sys; from gateway.server.app import create_app; app = create_app(); "
        "import gateway.proxy.upstream as upstream; "
        "assert app.observer.tracing is None and upstream.inject_trace is None; "
        "ours = ('opentelemetry.sdk.trace', 'opentelemetry.exporter', 'opentelemetry.propagate'); "
        "print(sorted(m for m in sys.modules if m.startswith(ours)))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["MLFLOW_GATEWAY_CONFIG"] = str(config)
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

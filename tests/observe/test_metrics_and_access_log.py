"""One scrape of /metrics on a 4-worker gateway shows the exact sums of what every worker
served; the access log has one JSON line per request and no secret or prompt."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import free_port
from tests.integration.configs import openai_config, openai_endpoint
from tests.observe.support import access_lines, scrape_when, total, value

ADMIN = "admin-secret-for-observe-0123456789"
PROMPT = "tell me about the purple-walrus-7319 protocol"
UPSTREAM_KEY = "sk-test-secret-key"  # the endpoints' provider key (tests/integration/configs.py)


def config(upstream_base: str, database_url: str, log_payloads: bool = False) -> str:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    limited = openai_endpoint("limited", "chat", "gpt-4o-mini", upstream_base)
    limited += "    limit: {calls: 2, renewal_period: hour}\n"
    return (
        "endpoints:"
        + openai_endpoint("chat", "chat", "gpt-4o-mini", upstream_base)
        + openai_endpoint("embeddings", "embeddings", "text-embedding-3-small", upstream_base)
        + limited
        + openai_endpoint("overloaded", "chat", "err-503-text", upstream_base)
        + openai_endpoint("refused", "chat", "gpt-4o-mini", dead)
        + f"database_url: {database_url}\n"
        + f"auth:\n  admin_key: {ADMIN}\n  require_keys: true\n"
        + ("log_payloads: true\n" if log_payloads else "")
    )


def start(start_gateway, upstream, tmp_path: Path, log_payloads: bool = False, workers: int = 4):
    log = tmp_path / "access.log"
    database = f"sqlite:///{tmp_path / 'keys.db'}"
    gateway = start_gateway(
        config(upstream.base, database, log_payloads),
        workers=workers,
        extra_args=["--access-log", str(log)],
        env={"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "5"},
    )
    created = httpx.post(
        f"{gateway.url}/admin/v1/keys",
        json={"name": "observer", "team": "obs"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return gateway, log, created.json()["key"]


def invoke(url: str, key: str, name: str, body: dict, request_id: str | None = None) -> httpx.Response:
    """A new connection each time, so the kernel hands the requests to every worker."""
    headers = {"Connection": "close"} | ({"Authorization": f"Bearer {key}"} if key else {})
    if request_id is not None:
        headers["x-request-id"] = request_id
    return httpx.post(f"{url}/endpoints/{name}/invocations", json=body, headers=headers, timeout=20)


CHAT = {"messages": [{"role": "user", "content": PROMPT}]}
EMBED = {"input": [PROMPT]}


def drive(url: str, key: str) -> list[tuple[str, int, str]]:
    """The mix; (endpoint asked, status, x-request-id) of each request."""
    sent: list[tuple[str, int, str]] = []

    def call(name: str, body: dict, request_id: str | None = None) -> None:
        response = invoke(url, key, name, body, request_id)
        sent.append((name, response.status_code, response.headers["x-request-id"]))

    for index in range(12):
        call("chat", CHAT, f"client-id-{index}" if index % 3 == 0 else None)
    for _ in range(4):
        call("embeddings", EMBED)
    for _ in range(3):
        call("limited", CHAT)  # 2 admitted, the third refused across all workers
    for _ in range(2):
        call("overloaded", CHAT)
    call("refused", CHAT)
    call("no-such-endpoint", CHAT)
    # streams through the OpenAI SDK on /v1, one asking for the usage chunk
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    for include_usage in (False, True):
        extra = {"stream_options": {"include_usage": True}} if include_usage else {}
        stream = client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True, **extra)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Hello from the mock upstream!"
        sent.append(("chat", 200, stream.response.headers["x-request-id"]))
    # a key the gateway does not know: refused before any endpoint
    response = invoke(url, "gw-" + "0" * 43, "chat", CHAT)
    sent.append(("chat", response.status_code, response.headers.get("x-request-id", "")))
    return sent


def metric_files_by_pid(gateway) -> set[str]:
    directories = list(Path("/dev/shm").glob(f"gateway-metrics-{gateway.proc.pid}-*"))
    assert len(directories) == 1
    return {m.group(1) for f in directories[0].iterdir() if (m := re.search(r"_(\d+)\.db$", f.name))}


def test_one_scrape_sums_every_worker_and_the_log_has_one_line_per_request(start_gateway, upstream, tmp_path):
    gateway, log, key = start(start_gateway, upstream, tmp_path)
    sent = drive(gateway.url, key)
    statuses = {(name, status) for name, status, _ in sent}
    assert ("limited", 429) in statuses and ("overloaded", 503) in statuses
    assert ("refused", 502) in statuses and ("no-such-endpoint", 404) in statuses
    assert ("chat", 401) in statuses

    # metrics need the key like every other non-invocation route
    assert httpx.get(f"{gateway.url}/metrics", timeout=10).status_code == 401
    scrape_response = httpx.get(
        f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert scrape_response.status_code == 200
    assert scrape_response.headers["content-type"].startswith("text/plain; version=")
    scrape = scrape_when(gateway.url, lambda found: total(found, "gateway_requests_total") >= len(sent), key)
    assert len(metric_files_by_pid(gateway)) >= 2, "the requests were served by several workers"

    requests = "gateway_requests_total"
    assert value(scrape, requests, endpoint="chat", provider="openai", status="200") == 14
    assert value(scrape, requests, endpoint="embeddings", provider="openai", status="200") == 4
    assert value(scrape, requests, endpoint="limited", provider="openai", status="200") == 2
    assert value(scrape, requests, endpoint="limited", provider="openai", status="429") == 1
    assert value(scrape, requests, endpoint="overloaded", provider="openai", status="503") == 2
    assert value(scrape, requests, endpoint="refused", provider="openai", status="502") == 1
    assert value(scrape, requests, endpoint="", provider="", status="404") == 1
    assert value(scrape, requests, endpoint="", provider="", status="401") == 1
    assert total(scrape, requests) == len(sent) == 26
    assert total(scrape, "gateway_request_duration_seconds_count") == 26
    assert total(scrape, "gateway_overhead_seconds_count") == 26
    assert value(scrape, "gateway_time_to_first_token_seconds_count", endpoint="chat", provider="openai") == 2
    assert value(scrape, "gateway_limit_rejections_total", endpoint="limited", limit="rate") == 1
    errors = "gateway_upstream_errors_total"
    assert value(scrape, errors, endpoint="overloaded", provider="openai", error="UpstreamError") == 2
    assert value(scrape, errors, endpoint="refused", provider="openai", error="UpstreamUnavailable") == 1
    assert total(scrape, errors) == 3
    assert value(scrape, "gateway_inflight_requests") == 0
    assert value(scrape, "gateway_usage_records_dropped_total") == 0

    assert gateway.stop() == 0  # the last lines are written as the workers stop
    lines = access_lines(log)
    assert len(lines) == len(sent)
    assert sorted(line["request_id"] for line in lines) == sorted(request_id for *_, request_id in sent)
    assert {f"client-id-{i}" for i in (0, 3, 6, 9)} <= {line["request_id"] for line in lines}
    by_id = {line["request_id"]: line for line in lines}
    for name, status, request_id in sent:
        line = by_id[request_id]
        assert line["status"] == status
        assert line["endpoint"] == (name if name != "no-such-endpoint" and status != 401 else None)
    answered = [line for line in lines if line["endpoint"] == "chat" and not line["stream"]]
    assert len(answered) == 12
    assert all((line["prompt_tokens"], line["completion_tokens"]) == (5, 6) for line in answered)
    assert all(line["consumer"] and line["team"] == "obs" for line in lines if line["status"] != 401)

    # the metrics' tokens and cost are the records' sums, kind by kind
    for endpoint in ("chat", "embeddings", "limited"):
        mine = [line for line in lines if line["endpoint"] == endpoint]
        for kind, field in (("prompt", "prompt_tokens"), ("completion", "completion_tokens")):
            expected = sum(line[field] for line in mine)
            assert expected > 0 or (endpoint, kind) == ("embeddings", "completion")
            assert (
                value(scrape, "gateway_tokens_total", endpoint=endpoint, provider="openai", kind=kind)
                == expected
            )
        cost = value(scrape, "gateway_cost_usd_total", endpoint=endpoint, provider="openai")
        assert cost == pytest.approx(sum(line["cost_usd"] for line in mine), rel=1e-9)
    assert value(scrape, "gateway_cost_usd_total", endpoint="chat", provider="openai") > 0

    # nothing of a secret, nor the prompt, in the log
    text = log.read_text()
    for secret in (UPSTREAM_KEY, key, key[3:], ADMIN, "purple-walrus", "Hello from"):
        assert secret not in text
    assert os.stat(log).st_mode & 0o077 == 0  # created private


def test_payloads_are_logged_only_when_the_config_says_so(start_gateway, upstream, tmp_path):
    gateway, log, key = start(start_gateway, upstream, tmp_path, log_payloads=True, workers=2)
    answer = invoke(gateway.url, key, "chat", CHAT)
    assert answer.status_code == 200
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    stream = client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    embedded = invoke(gateway.url, key, "embeddings", EMBED)
    assert embedded.status_code == 200
    secret_prompt = {"messages": [{"role": "user", "content": f"my key is {UPSTREAM_KEY} and {key}"}]}
    assert invoke(gateway.url, key, "chat", secret_prompt).status_code == 200
    assert gateway.stop() == 0

    lines = access_lines(log)
    assert len(lines) == 4
    chat, streamed, embeddings, secret = lines
    assert chat["request"] == {"messages": CHAT["messages"]}
    assert chat["answer"] == answer.json()["choices"][0]["message"]["content"]
    assert streamed["stream"] and streamed["answer"] == "Hello from the mock upstream!"
    assert embeddings["request"] == {"input": [PROMPT]} and embeddings["answer"] is None
    assert secret["request"]["messages"][0]["content"] == "my key is *** and ***"
    text = log.read_text()
    assert UPSTREAM_KEY not in text and key not in text


def test_metrics_without_a_key_when_configured(start_gateway, upstream, tmp_path):
    database = f"sqlite:///{tmp_path / 'keys.db'}"
    gateway = start_gateway(
        config(upstream.base, database), workers=2, env={"GATEWAY_METRICS_REQUIRE_KEY": "0"}
    )
    assert invoke(gateway.url, "", "chat", CHAT).status_code == 401  # invocations still need keys
    scrape = scrape_when(gateway.url, lambda found: total(found, "gateway_requests_total") >= 1)
    assert value(scrape, "gateway_requests_total", endpoint="", provider="", status="401") == 1


def test_access_log_to_stdout(start_gateway, upstream, tmp_path):
    gateway = start_gateway(openai_config(upstream.base), workers=2, extra_args=["--access-log", "-"])
    response = invoke(gateway.url, "", "chat", CHAT, request_id="stdout-line-1")
    assert response.status_code == 200
    assert gateway.stop() == 0
    output = gateway.log_path.read_text()  # the workers' stdout, after they stopped
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [(line["request_id"], line["endpoint"], line["status"]) for line in lines] == [
        ("stdout-line-1", "chat", 200)
    ]


def test_an_access_log_that_cannot_be_written_stops_the_start(upstream, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(openai_config(upstream.base))
    missing = tmp_path / "no-such-dir" / "access.log"
    command = [sys.executable, "-m", "gateway", "start", "--config-path", str(config)]
    command += ["--port", str(free_port()), "--access-log", str(missing)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: cannot write the access log {missing}: No such file or directory"

"""Reading usage back, end to end: requests through real gateway processes (several workers,
SQLite and PostgreSQL) with consumer keys, their records written by each worker's batch writer,
and `GET /admin/v1/usage` and `gateway usage` showing exactly the requests made and the tokens
the mock upstream reported, priced by the config. A database outage delays the records, never a
request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
import pytest
from psycopg import sql

from tests.conftest import GatewayProcess, launch

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin-secret-for-usage-tests-0123"
MESSAGES = [{"role": "user", "content": "hi"}]
# what the mock upstream reports (tests/support/openai_upstream.py) and what the config charges
CHAT_TOKENS = (5, 6)  # prompt, completion (cached: 0)
EMBEDDING_TOKENS = (4, 0)
CHAT_COST = (5 * 1.5 + 6 * 2.5) / 1e6
EMBEDDING_COST = 4 * 0.02 / 1e6


def config(base: str, database_url: str) -> str:
    return f"""
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-test-secret-key, openai_api_base: {base}}}
      pricing: {{input_per_million: 1.5, output_per_million: 2.5}}
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: openai
      name: text-embedding-3-small
      config: {{openai_api_key: sk-test-secret-key, openai_api_base: {base}}}
      pricing: {{input_per_million: 0.02, output_per_million: 0}}
database_url: {database_url}
auth:
  admin_key: {ADMIN}
"""


def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def create_key(url: str, name: str, team: str) -> dict[str, Any]:
    with admin(url) as client:
        response = client.post("/admin/v1/keys", json={"name": name, "team": team})
    assert response.status_code == 201, response.text
    return dict(response.json())


def chat_sdk(url: str, key: str, stream: bool) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    if stream:
        chunks = client.chat.completions.create(
            model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert [chunk.usage for chunk in chunks if chunk.usage][0].prompt_tokens == CHAT_TOKENS[0]
    else:
        assert client.chat.completions.create(model="chat", messages=MESSAGES).usage.completion_tokens == 6


def invoke(url: str, endpoint: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(f"{url}/endpoints/{endpoint}/invocations", json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response


def usage(url: str, **params: str) -> dict[str, Any]:
    with admin(url) as client:
        response = client.get("/admin/v1/usage", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for_requests(url: str, expected: int, timeout: float) -> float:
    """Seconds until the usage API counts `expected` requests (bounded by `timeout`)."""
    started = time.monotonic()
    while True:
        total = sum(row["requests"] for row in usage(url)["usage"])
        if total >= expected:
            assert total == expected
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{total} of {expected} requests recorded"
        time.sleep(0.1)


def by(rows: list[dict[str, Any]], column: str) -> dict[Any, dict[str, Any]]:
    return {row[column]: row for row in rows}


def totals(requests: int, tokens: tuple[int, int], cost: float) -> dict[str, Any]:
    return {
        "requests": requests,
        "prompt_tokens": requests * tokens[0],
        "completion_tokens": requests * tokens[1],
        "cached_tokens": 0,
        "cost_usd": pytest.approx(requests * cost, abs=1e-9),
    }


def without(row: dict[str, Any], *columns: str) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name not in columns}


class Traffic:
    """6 chats by key A (team alpha: 4 plain, 2 streamed, openai SDK), 3 embeddings by key B
    (team beta, MLflow route), 2 chats without a key, spread over the gateway's workers."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.key_a = create_key(gateway.url, "app-a", "alpha")
        self.key_b = create_key(gateway.url, "app-b", "beta")
        self.days = {datetime.now(UTC).date().isoformat()}
        for i in range(6):
            chat_sdk(gateway.url, self.key_a["key"], stream=i >= 4)
        for _ in range(3):
            invoke(gateway.url, "embeddings", {"input": "hello"}, self.key_b["key"])
        for _ in range(2):
            invoke(gateway.url, "chat", {"messages": MESSAGES})
        self.days.add(datetime.now(UTC).date().isoformat())  # a run across midnight has two
        self.flushed_after = wait_for_requests(gateway.url, 11, timeout=5)


@pytest.fixture(scope="module")
def traffic(upstream, tmp_path_factory) -> Any:
    directory = tmp_path_factory.mktemp("usage")
    gateway = launch(directory, config(upstream.base, f"sqlite:///{directory}/gateway.db"), workers=2)
    yield Traffic(gateway)
    gateway.stop()


def test_records_reach_the_database_within_two_seconds(traffic: Traffic) -> None:
    assert traffic.flushed_after < 2.0


def test_usage_by_key_endpoint_model_team_and_day(traffic: Traffic) -> None:
    url = traffic.gateway.url
    keys = by(usage(url, group_by="key")["usage"], "key")
    assert set(keys) == {traffic.key_a["id"], traffic.key_b["id"], None}
    assert keys[traffic.key_a["id"]] == {
        "key": traffic.key_a["id"],
        "name": "app-a",
        **totals(6, CHAT_TOKENS, CHAT_COST),
    }
    assert without(keys[traffic.key_b["id"]], "key", "name") == totals(3, EMBEDDING_TOKENS, EMBEDDING_COST)
    assert without(keys[None], "key", "name") == totals(2, CHAT_TOKENS, CHAT_COST)
    assert keys[None]["name"] is None

    teams = by(usage(url, group_by="team")["usage"], "team")
    assert {team: row["requests"] for team, row in teams.items()} == {"alpha": 6, "beta": 3, None: 2}

    endpoints = usage(url)["usage"]  # group_by defaults to endpoint; highest cost first
    assert [row["endpoint"] for row in endpoints] == ["chat", "embeddings"]
    assert without(endpoints[0], "endpoint") == totals(8, CHAT_TOKENS, CHAT_COST)
    assert without(endpoints[1], "endpoint") == totals(3, EMBEDDING_TOKENS, EMBEDDING_COST)

    models = by(usage(url, group_by="model")["usage"], "model")
    assert {model: row["requests"] for model, row in models.items()} == {
        "gpt-4o-mini": 8,
        "text-embedding-3-small": 3,
    }

    days = usage(url, group_by="day")["usage"]
    assert {row["day"] for row in days} <= traffic.days
    assert sum(row["requests"] for row in days) == 11
    assert sum(row["cost_usd"] for row in days) == pytest.approx(8 * CHAT_COST + 3 * EMBEDDING_COST, abs=1e-9)


def test_the_time_range_selects_records(traffic: Traffic) -> None:
    url = traffic.gateway.url
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    answer = usage(url, start=tomorrow, end=tomorrow)
    assert answer["usage"] == [] and answer["start"] == f"{tomorrow}T00:00:00Z"
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert sum(row["requests"] for row in usage(url, start=since)["usage"]) == 11


def test_admin_key_required_and_parameters_checked(traffic: Traffic) -> None:
    url = f"{traffic.gateway.url}/admin/v1/usage"
    assert httpx.get(url).status_code == 401
    consumer = httpx.get(url, headers={"Authorization": f"Bearer {traffic.key_a['key']}"})
    assert consumer.status_code == 403
    with admin(traffic.gateway.url) as client:
        bad_group = client.get("/admin/v1/usage", params={"group_by": "provider"})
        assert bad_group.status_code == 422
        assert "group_by: must be one of key, team, endpoint, model, day" in bad_group.json()["detail"]
        unknown = client.get("/admin/v1/usage", params={"from": "2026-01-01"})
        assert unknown.status_code == 422 and "known: group_by, start, end" in unknown.json()["detail"]
        bad_date = client.get("/admin/v1/usage", params={"start": "last week"})
        assert bad_date.status_code == 422 and "ISO-8601" in bad_date.json()["detail"]
        assert client.post("/admin/v1/usage").status_code == 405


def gateway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "usage", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**environment, "PYTHONPATH": str(ROOT)},
    )


def test_the_cli_prints_the_same_numbers(traffic: Traffic) -> None:
    window = {
        "start": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "end": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    }
    config_path = str(traffic.gateway.config_path)
    for group_by in ("key", "team", "endpoint", "model", "day"):
        api = usage(traffic.gateway.url, group_by=group_by, **window)
        printed = gateway_cli(
            "--config",
            config_path,
            "--group-by",
            group_by,
            "--start",
            window["start"],
            "--end",
            window["end"],
            "--json",
        )
        assert printed.returncode == 0, printed.stderr
        assert json.loads(printed.stdout) == api

    table = gateway_cli("--config-path", config_path, "--group-by", "key")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "KEY",
        "NAME",
        "REQUESTS",
        "PROMPT_TOKENS",
        "COMPLETION_TOKENS",
        "CACHED_TOKENS",
        "COST_USD",
    ]
    row_a = next(line for line in lines if line.startswith(traffic.key_a["id"]))
    assert row_a.split() == [traffic.key_a["id"], "app-a", "6", "30", "36", "0", f"{6 * CHAT_COST:.6f}"]
    cost = 8 * CHAT_COST + 3 * EMBEDDING_COST
    assert lines[-1].split() == ["TOTAL", "11", str(8 * 5 + 3 * 4), str(8 * 6), "0", f"{cost:.6f}"]
    assert len({len(line) for line in lines}) == 1  # aligned
    assert "sk-test-secret-key" not in table.stdout + table.stderr

    refused = gateway_cli("--config-path", config_path, "--group-by", "provider")
    assert refused.returncode == 2 and "invalid choice" in refused.stderr


# -- PostgreSQL: the same report, and an outage that delays records but never a request --------
def set_connections(admin_url: str, database: str, allowed: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.SQL("true" if allowed else "false")
            )
        )
        if not allowed:  # and the gateway's pooled connections go too
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
            )


def wait_for_log(gateway: GatewayProcess, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in gateway.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{gateway.log()[-3000:]}"
        time.sleep(0.1)


def test_postgres_usage_and_an_outage_that_never_slows_a_request(upstream, postgres, tmp_path) -> None:
    database = postgres.create_database().rsplit("/", 1)[1]
    password = "pw-usage-never-logged-42"  # trust authentication: accepted, and must never show
    gateway = launch(tmp_path, config(upstream.base, postgres.url(database, password)), workers=2)
    try:
        key = create_key(gateway.url, "pg-app", "gamma")
        for _ in range(3):
            chat_sdk(gateway.url, key["key"], stream=False)
        invoke(gateway.url, "embeddings", {"input": "x"})
        wait_for_requests(gateway.url, 4, timeout=5)
        assert by(usage(gateway.url, group_by="key")["usage"], "key")[key["id"]] == {
            "key": key["id"],
            "name": "pg-app",
            **totals(3, CHAT_TOKENS, CHAT_COST),
        }
        teams = by(usage(gateway.url, group_by="team")["usage"], "team")
        assert {team: row["requests"] for team, row in teams.items()} == {"gamma": 3, None: 1}
        models = by(usage(gateway.url, group_by="model")["usage"], "model")
        assert without(models["text-embedding-3-small"], "model") == totals(
            1, EMBEDDING_TOKENS, EMBEDDING_COST
        )
        [today] = usage(gateway.url, group_by="day")["usage"]
        assert today["day"] == datetime.now(UTC).date().isoformat() and today["requests"] == 4

        set_connections(postgres.admin_url, database, allowed=False)
        slowest = 0.0
        for _ in range(8):
            started = time.monotonic()
            chat_sdk(gateway.url, key["key"], stream=False)  # the key is in every worker's memory
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5  # no request waits for the database
        wait_for_log(gateway, "usage records: cannot write to the database")
        set_connections(postgres.admin_url, database, allowed=True)
        wait_for_requests(gateway.url, 12, timeout=40)  # retries back off to a few seconds
        assert by(usage(gateway.url, group_by="key")["usage"], "key")[key["id"]]["requests"] == 11
        wait_for_log(gateway, "records dropped meanwhile")
    finally:
        gateway.stop()
    log = gateway.log_path.read_text(errors="replace")
    assert password not in log
    assert "0 records dropped meanwhile" in log and "1 records dropped" not in log
    # once per outage per worker, however many retries failed
    assert log.count("usage records: cannot write to the database") <= 2

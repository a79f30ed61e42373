"""Budgets against running gateways with real clients: every call to the mock OpenAI upstream
reports 5 prompt tokens, priced here at $2,000 per million input tokens (output free), so each
call costs exactly $0.01 and a $0.05 budget admits exactly 5 requests, whichever worker or host
serves them. Then 429 naming the budget, in the OpenAI error shape on /v1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import launch
from tests.limits.conftest import RedisServer, fire

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
ADMIN = "admin-secret-for-budget-tests-0123"


def endpoint(base: str, name: str = "chat", budget: str = "") -> str:
    text = f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-test, openai_api_base: {base}}}
      pricing: {{input_per_million: 2000, output_per_million: 0}}
"""
    return text + (f"    budget: {budget}\n" if budget else "")


def call(url: str, name: str = "chat", key: str | None = None) -> httpx.Response:
    """One request on a connection of its own, so consecutive calls land on any worker."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {**CHAT, "model": name}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def admitted_in_a_row(url: str, tries: int, **kwargs: str) -> int:
    """How many sequential calls succeed before the first 429 (then asserts all later are 429)."""
    statuses = [call(url, **kwargs).status_code for _ in range(tries)]
    admitted = statuses.index(429) if 429 in statuses else len(statuses)
    assert statuses[:admitted] == [200] * admitted and set(statuses[admitted:]) <= {429}, statuses
    return admitted


def test_endpoint_budget_admits_exactly_n_across_four_workers(start_gateway, upstream):
    gateway = start_gateway(
        "endpoints:" + endpoint(upstream.base, budget="{usd: 0.05, period: day}"), workers=4
    )
    assert admitted_in_a_row(gateway.url, 7) == 5
    # the openai SDK raises its 429 error with the budget named and when it resets
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    error = caught.value
    assert error.type == "budget_exceeded"
    assert "endpoint 'chat' daily budget of $0.05 is spent ($0.05 settled); it resets at" in error.message
    assert error.message.endswith("T00:00:00Z")
    retry_after = int(error.response.headers["retry-after"])
    assert 1 <= retry_after <= 86_400
    # MLflow's route: the same budget, its {"detail": ...} body
    mlflow = httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT, timeout=10)
    assert mlflow.status_code == 429
    assert mlflow.json()["detail"].startswith("Budget exceeded: endpoint 'chat' daily budget")


def test_global_budget_and_an_endpoint_without_one(start_gateway, upstream):
    config = (
        "endpoints:"
        + endpoint(upstream.base, "a")
        + endpoint(upstream.base, "b")
        + "budgets: {global: {usd: 0.03, period: month}}\n"
    )
    gateway = start_gateway(config, workers=2)
    statuses = [call(gateway.url, name).status_code for name in ("a", "b", "a", "b", "a")]
    assert statuses == [200, 200, 200, 429, 429]
    assert "global monthly budget of $0.03" in call(gateway.url, "a").json()["error"]["message"]


def test_two_hosts_sharing_redis_admit_exactly_n_in_total(
    tmp_path: Path, upstream, redis_server: RedisServer
):
    config = (
        f"limits_storage: {redis_server.url}\n"
        + "endpoints:"
        + endpoint(upstream.base, budget="{usd: 0.05, period: rolling, window: 24h}")
    )
    hosts = [launch(tmp_path, config, workers=2), launch(tmp_path, config, workers=2)]
    try:
        statuses = [call(hosts[i % 2].url).status_code for i in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        refused = call(hosts[1].url).json()["error"]["message"]
        assert "endpoint 'chat' 24h rolling budget of $0.05 is spent" in refused
        assert "enough of it leaves the window at" in refused
    finally:
        for host in hosts:
            host.stop()


def test_concurrent_overshoot_is_bounded_by_what_is_in_flight(start_gateway, upstream):
    gateway = start_gateway(
        "endpoints:" + endpoint(upstream.base, budget="{usd: 0.05, period: day}"), workers=4
    )
    url = f"{gateway.url}/v1/chat/completions"
    first = fire([(url, {**CHAT, "model": "chat"})] * 8, connections=8)
    admitted = sum(r.status_code == 200 for r in first)
    assert 5 <= admitted <= 8  # all 8 may be admitted against the same settled spend
    time.sleep(0.3)
    assert call(gateway.url).status_code == 429  # and then nothing more


def test_failure_mode_closed_refuses_when_redis_is_down(start_gateway, upstream, redis_server: RedisServer):
    budget = "{usd: 1, period: day}"
    closed = start_gateway(
        f"limits_storage: {redis_server.url}\nlimits_failure_mode: closed\nendpoints:"
        + endpoint(upstream.base, budget=budget)
    )
    opened = start_gateway(
        f"limits_storage: {redis_server.url}\nendpoints:" + endpoint(upstream.base, budget=budget)
    )
    assert call(closed.url).status_code == 200
    redis_server.kill()
    refused = call(closed.url)
    assert refused.status_code == 503
    assert "Budgets cannot be checked" in refused.json()["error"]["message"]
    assert "redis://127.0.0.1" in refused.json()["error"]["message"]
    assert call(opened.url).status_code == 200  # open: admitted, with a warning in the log
    assert "budgets not enforced" in opened.log()


@pytest.fixture
def keyed(tmp_path: Path, upstream):
    config = (
        "endpoints:"
        + endpoint(upstream.base)
        + f"database_url: sqlite:///{tmp_path}/keys.db\nauth:\n  admin_key: {ADMIN}\n"
    )
    gateway = launch(tmp_path, config, workers=4)
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    yield gateway, admin
    admin.close()
    gateway.stop()


def test_key_budget_set_changed_and_removed_by_the_admin_api(keyed):
    gateway, admin = keyed
    created = admin.post("/admin/v1/keys", json={"name": "ci-bot", "budget": {"usd": 0.03, "period": "day"}})
    assert created.status_code == 201, created.text
    assert created.json()["budget"] == {"usd": 0.03, "period": "day"}
    key, key_id = created.json()["key"], created.json()["id"]
    time.sleep(0.6)  # every worker's poll has seen the new key
    assert admitted_in_a_row(gateway.url, 5, key=key) == 3
    refused = call(gateway.url, key=key).json()["error"]["message"]
    assert "key 'ci-bot' daily budget of $0.03 is spent ($0.03 settled); it resets at" in refused
    assert key not in refused
    # a key without a budget is not held back by another key's
    other = admin.post("/admin/v1/keys", json={"name": "free"}).json()["key"]
    time.sleep(0.6)
    assert call(gateway.url, key=other).status_code == 200
    # raised: admitted again, up to the new amount
    raised = admin.patch(f"/admin/v1/keys/{key_id}", json={"budget": {"usd": 0.04, "period": "day"}})
    assert raised.json()["budget"] == {"usd": 0.04, "period": "day"}
    time.sleep(0.6)
    assert admitted_in_a_row(gateway.url, 3, key=key) == 1
    # removed: no budget any more
    assert admin.patch(f"/admin/v1/keys/{key_id}", json={"budget": None}).json()["budget"] is None
    assert admin.get(f"/admin/v1/keys/{key_id}").json()["budget"] is None
    time.sleep(0.6)
    assert [call(gateway.url, key=key).status_code for _ in range(3)] == [200] * 3


def test_key_budget_errors_name_the_field(keyed):
    _, admin = keyed
    bad = admin.post("/admin/v1/keys", json={"name": "x", "budget": {"usd": 5, "period": "fortnight"}})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("budget.period: Input should be 'day', 'week'")


def test_team_budget_set_and_removed_by_the_admin_api(keyed):
    gateway, admin = keyed
    put = admin.put("/admin/v1/teams/ops/budget", json={"usd": 0.02, "period": "week"})
    assert put.status_code == 200, put.text
    assert put.json()["budget"] == {"usd": 0.02, "period": "week"}
    keys = [
        admin.post("/admin/v1/keys", json={"name": f"k{i}", "team": "ops"}).json()["key"] for i in range(2)
    ]
    time.sleep(0.6)
    statuses = [call(gateway.url, key=keys[i % 2]).status_code for i in range(4)]
    assert statuses == [200, 200, 429, 429]  # the team's two keys share its budget
    refused = call(gateway.url, key=keys[0]).json()["error"]["message"]
    assert "team 'ops' weekly budget of $0.02 is spent" in refused
    assert admin.get("/admin/v1/teams/ops/budget").json()["budget"] == {"usd": 0.02, "period": "week"}
    assert admin.delete("/admin/v1/teams/ops/budget").json()["budget"] is None
    assert admin.delete("/admin/v1/teams/ops/budget").status_code == 404
    time.sleep(0.6)
    assert [call(gateway.url, key=keys[1]).status_code for _ in range(2)] == [200, 200]
    bad = admin.put("/admin/v1/teams/ops/budget", json={"usd": -1, "period": "week"})
    assert bad.status_code == 422
    assert httpx.get(f"{gateway.url}/admin/v1/teams/ops/budget").status_code == 401


def test_streamed_answers_are_charged_too(start_gateway, upstream):
    gateway = start_gateway(
        "endpoints:" + endpoint(upstream.base, budget="{usd: 0.02, period: day}"), workers=2
    )
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        stream = client.chat.completions.create(
            model="chat", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    with pytest.raises(openai.RateLimitError, match="endpoint 'chat' daily budget of \\$0.02 is spent"):
        client.chat.completions.create(model="chat", messages=messages, stream=True)

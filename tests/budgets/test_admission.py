"""Admission and settlement against an in-memory ledger: which budgets apply, when a request
is refused and what it is told, the failure modes, crossings alerted once, alert delivery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest

from gateway.budgets import admission, sink
from gateway.budgets.alerts import AlertSender
from gateway.budgets.ledger import LedgerUnavailable
from gateway.budgets.policy import NANO, Budget, BudgetSpec, Period
from gateway.config import parse_config
from gateway.errors import ANTHROPIC, GEMINI, MLFLOW, OPENAI, BudgetExceeded, LimitsUnavailable
from gateway.pipeline.context import Consumer


class MemoryLedger:
    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.down = False
        self.reads = 0

    async def totals(self, keys: Sequence[str]) -> list[int]:
        if self.down:
            raise LedgerUnavailable("Redis at redis://127.0.0.1:1 is unreachable")
        self.reads += 1
        return [self.counters.get(key, 0) for key in keys]

    async def add(self, items: Sequence[tuple[str, int]], amount: int) -> list[int]:
        if self.down:
            raise LedgerUnavailable("down")
        for key, _ in items:
            self.counters[key] = self.counters.get(key, 0) + amount
        return [self.counters[key] for key, _ in items]

    async def close(self) -> None:
        return None


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> MemoryLedger:
    memory = MemoryLedger()
    monkeypatch.setattr(admission, "ledger_for", lambda config: memory)
    monkeypatch.setattr(sink, "ledger_for", lambda config: memory)
    return memory


CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: mock, name: m, config: {}}
    budget: {usd: 0.05, period: day}
  - name: free
    endpoint_type: llm/v1/chat
    model: {provider: mock, name: m, config: {}}
routes:
  - name: split
    task_type: llm/v1/chat
    destinations: [{name: chat, traffic_percentage: 100}]
    budget: {usd: 1, period: week}
"""


def context(
    text: str = CONFIG,
    target: str = "chat",
    asked: str | None = None,
    consumer: Consumer | None = None,
    team_budgets: dict[str, BudgetSpec] | None = None,
) -> Any:
    config = parse_config(text)
    keys = SimpleNamespace(team_budgets=team_budgets) if team_budgets is not None else None
    return SimpleNamespace(
        table=SimpleNamespace(config=config),
        consumer=consumer,
        keys=keys,
        target=SimpleNamespace(name=target, router=None),
        asked=asked or target,
    )


def scopes(ctx: Any) -> list[tuple[str, str]]:
    return [(budget.scope, budget.name) for budget in admission.applicable(ctx)]


def test_scopes_that_apply_in_order() -> None:
    daily = BudgetSpec(NANO, Period("day"))
    text = (
        CONFIG
        + "budgets: {global: {usd: 100, period: month}, teams: {ops: {usd: 5, period: day}, '*': {usd: 1, period: day}}}\n"
    )
    key = Consumer("key_1", "key", "ci-bot", "ops", budget=daily)
    assert scopes(context(text, asked="split", consumer=key)) == [
        ("key", "key_1"),
        ("team", "ops"),
        ("endpoint", "chat"),
        ("route", "split"),
        ("global", ""),
    ]
    # another team gets the "*" default; a team budget from the admin API wins over the config
    other = Consumer("jwt:x", "jwt", "x", "web")
    assert admission.applicable(context(text, consumer=other))[0].spec.nano_usd == NANO
    admin_set = {"ops": BudgetSpec(7 * NANO, Period("week"))}
    team = admission.applicable(context(text, consumer=key, team_budgets=admin_set))[1]
    assert (team.scope, team.spec.nano_usd) == ("team", 7 * NANO)


def test_no_budget_applies_to_an_endpoint_without_one() -> None:
    assert admission.applicable(context(target="free")) == []


def test_refused_once_settled_spend_reaches_the_budget(ledger: MemoryLedger) -> None:
    ctx = context()
    budgets = admission.applicable(ctx)
    settle = sink.BudgetSink()
    for _ in range(5):  # 5 x $0.01 = the $0.05 budget
        asyncio.run(admission.check_budgets(ctx, budgets))
        asyncio.run(settle.settle(ctx.table.config, budgets, NANO // 100))
    with pytest.raises(BudgetExceeded) as caught:
        asyncio.run(admission.check_budgets(ctx, budgets))
    error = caught.value
    assert error.status == 429
    assert error.budget == "endpoint 'chat' daily budget"
    assert error.message.startswith(
        "Budget exceeded: endpoint 'chat' daily budget of $0.05 is spent ($0.05 settled); it resets at "
    )
    assert error.message.endswith("T00:00:00Z")
    ((name, value),) = error.headers()
    assert name == b"retry-after" and 1 <= int(value) <= 86_400
    body = orjson.loads(error.body(OPENAI))
    assert body["error"]["type"] == "budget_exceeded" and body["error"]["message"] == error.message
    # every API style gets its own error object, so each SDK raises its own 429 error
    assert orjson.loads(error.body(ANTHROPIC))["error"] == {
        "type": "rate_limit_error",
        "message": error.message,
    }
    assert orjson.loads(error.body(GEMINI))["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert orjson.loads(error.body(MLFLOW)) == {"detail": error.message}


def test_the_budget_named_is_the_one_that_frees_up_last(ledger: MemoryLedger) -> None:
    ctx = context(asked="split")
    budgets = admission.applicable(ctx)
    for budget in budgets:  # both spent: the weekly route budget frees up last
        window = budget.spec.period.window(time.time())
        ledger.counters[budget.counter(window.current)] = budget.spec.nano_usd
    with pytest.raises(BudgetExceeded) as caught:
        asyncio.run(admission.check_budgets(ctx, budgets))
    assert caught.value.budget == "route 'split' weekly budget"


def test_ledger_down_fails_open_or_closed(ledger: MemoryLedger) -> None:
    ledger.down = True
    ctx = context()
    asyncio.run(admission.check_budgets(ctx, admission.applicable(ctx)))  # open: admitted
    closed = context("limits_failure_mode: closed\n" + CONFIG)
    with pytest.raises(LimitsUnavailable) as caught:
        asyncio.run(admission.check_budgets(closed, admission.applicable(closed)))
    assert "Budgets cannot be checked" in caught.value.message


class Sent(list[dict[str, Any]]):
    def send(self, payload: dict[str, Any]) -> None:
        self.append(payload)


def test_each_threshold_crossing_alerts_once(ledger: MemoryLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = Sent()
    monkeypatch.setattr(sink, "alert_sender", lambda webhook: sent)
    ctx = context(
        CONFIG + "budget_alerts: {webhook: 'https://hooks.example/t', thresholds: [0.5, 0.8, 1.0]}\n"
    )
    budgets = admission.applicable(ctx)
    settle = sink.BudgetSink()
    for _ in range(8):  # $0.01 each against $0.05: 0.5 at the 3rd, 0.8 at the 4th, 1.0 at the 5th
        asyncio.run(settle.settle(ctx.table.config, budgets, NANO // 100))
    assert [(alert["threshold"], alert["spent_usd"]) for alert in sent] == [
        (0.5, 0.03),
        (0.8, 0.04),
        (1.0, 0.05),
    ]
    assert sent[0]["budget"] == "endpoint 'chat' daily budget" and sent[0]["usd"] == 0.05


def test_a_rolling_crossing_is_claimed_once(ledger: MemoryLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = Sent()
    monkeypatch.setattr(sink, "alert_sender", lambda webhook: sent)
    config = parse_config(CONFIG + "budget_alerts: {webhook: 'https://hooks.example/t', thresholds: [1.0]}\n")
    budget = Budget("global", "", BudgetSpec(10, Period("rolling", 3600)))
    settle = sink.BudgetSink()
    asyncio.run(settle.settle(config, [budget], 10))
    # a second settlement that saw the same crossing (a concurrent one) does not alert again
    now = time.time()
    asyncio.run(settle._crossings(config, budget, budget.spec.period.window(now), 10, 10, now))
    assert len(sent) == 1


def test_alerts_are_retried_with_backoff_then_delivered() -> None:
    calls: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(orjson.loads(request.content))
        return httpx.Response(503 if len(calls) < 3 else 200)

    async def run() -> None:
        sender = AlertSender("https://hooks.example/secret-token", backoff=0.01)
        sender._client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        sender.send({"budget": "global monthly budget", "threshold": 0.5})
        assert sender._task is not None
        await sender._task
        await sender.close()

    asyncio.run(run())
    assert len(calls) == 3 and calls[-1]["threshold"] == 0.5
    assert "secret-token" not in repr(AlertSender("https://hooks.example/secret-token"))


def test_a_refusing_receiver_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400)

    async def run() -> None:
        sender = AlertSender("https://hooks.example/x", backoff=0.01)
        sender._client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        sender.send({"budget": "b", "threshold": 1.0})
        assert sender._task is not None
        await sender._task

    asyncio.run(run())
    assert len(calls) == 1

"""Budget periods, windows and counter keys; the config's budget syntax and its errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.budgets.policy import ROLLING_BUCKETS, Budget, BudgetSpec, Period, timestamp_text, usd_text
from gateway.config import parse_config
from gateway.config.budgets import parse_budget
from gateway.errors import ConfigError


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def resets(period: Period, now: str) -> str:
    return timestamp_text(period.window(at(now)).resets_at)


def test_a_day_is_a_utc_calendar_day() -> None:
    day = Period("day")
    assert resets(day, "2026-12-01T00:00:00") == "2026-12-02T00:00:00Z"
    assert resets(day, "2026-12-01T23:59:59.999") == "2026-12-02T00:00:00Z"
    assert day.window(at("2026-12-01T23:59:59")).current == "day:2026-12-01"
    assert day.window(at("2026-12-02T00:00:00")).current == "day:2026-12-02"


def test_a_week_starts_on_monday_utc() -> None:
    week = Period("week")
    # 2026-11-30 is a Monday; 2026-12-06 a Sunday
    assert resets(week, "2026-11-30T00:00:00") == "2026-12-07T00:00:00Z"
    assert resets(week, "2026-12-06T23:59:59") == "2026-12-07T00:00:00Z"
    assert week.window(at("2026-12-06T23:59:59")).current == week.window(at("2026-11-30T00:00:00")).current
    assert week.window(at("2026-12-07T00:00:00")).current != week.window(at("2026-12-06T23:59:59")).current
    # ISO week-numbering year: 2026-12-31 (Thursday) is in 2026-W53, 2027-01-01 too
    assert week.window(at("2027-01-01T12:00:00")).current == "week:2026-W53"


def test_a_month_is_a_calendar_month_across_years_and_leap_days() -> None:
    month = Period("month")
    assert resets(month, "2026-12-31T23:59:59") == "2027-01-01T00:00:00Z"
    assert resets(month, "2028-02-29T12:00:00") == "2028-03-01T00:00:00Z"
    assert resets(month, "2026-01-01T00:00:00") == "2026-02-01T00:00:00Z"
    assert month.window(at("2026-12-15T00:00:00")).current == "month:2026-12"


def test_counters_expire_after_their_window() -> None:
    window = Period("day").window(at("2026-12-01T10:00:00"))
    assert window.expires_at > at("2026-12-02T00:00:00")


def test_a_rolling_window_sums_24_buckets_aligned_on_the_epoch() -> None:
    period = Period("rolling", 86_400)  # buckets of one hour
    window = period.window(at("2026-12-01T10:30:00"))
    assert len(window.keys) == ROLLING_BUCKETS
    assert window.current == window.keys[-1]
    assert window.bucket_seconds == 3600
    assert timestamp_text(window.resets_at) == "2026-12-01T11:00:00Z"
    later = period.window(at("2026-12-01T11:00:00"))
    assert later.keys[:-1] == window.keys[1:]  # the oldest bucket left, a new one came
    # spend settled in the oldest bucket still counts until its hour is 24 hours old
    assert window.keys[0] in period.window(at("2026-12-01T10:59:59")).keys


def test_a_rolling_window_frees_up_when_enough_old_buckets_leave() -> None:
    window = Period("rolling", 86_400).window(at("2026-12-01T10:30:00"))
    totals = [0] * ROLLING_BUCKETS
    totals[0], totals[5], totals[-1] = 40, 50, 10  # oldest, 5 hours younger, current
    # budget 60: spent 100; dropping the oldest leaves 60 (still spent), then the next non-empty
    assert timestamp_text(window.frees_at(totals, 60)) == "2026-12-01T16:00:00Z"
    assert timestamp_text(window.frees_at(totals, 61)) == "2026-12-01T11:00:00Z"


def test_calendar_frees_at_the_period_end() -> None:
    window = Period("month").window(at("2026-12-15T00:00:00"))
    assert timestamp_text(window.frees_at([10], 5)) == "2027-01-01T00:00:00Z"


def test_counter_keys_name_scope_period_and_owner() -> None:
    spec = BudgetSpec(50_000_000_000, Period("day"))
    budget = Budget("team", "a|b", spec)
    assert budget.counter("day:2026-12-01") == "budget|team|day:2026-12-01|a|b"
    assert budget.label == "team 'a|b' daily budget"
    assert Budget("global", "", spec).label == "global daily budget"
    assert Budget("key", "key_1", spec, "ci-bot").label == "key 'ci-bot' daily budget"
    rolling = Budget("endpoint", "chat", BudgetSpec(1, Period("rolling", 86_400)))
    assert rolling.label == "endpoint 'chat' 24h rolling budget"


def test_usd_text() -> None:
    assert usd_text(50_000_000_000) == "$50.00"
    assert usd_text(50_020_000_000) == "$50.02"
    assert usd_text(1_234_567_000_000_000) == "$1,234,567.00"
    assert usd_text(4_200_000) == "$0.0042"
    assert usd_text(0) == "$0.00"


def test_parse_budget_periods() -> None:
    assert parse_budget({"usd": 50, "period": "day"}) == BudgetSpec(50_000_000_000, Period("day"))
    assert parse_budget({"usd": 0.05, "period": "week"}) == BudgetSpec(50_000_000, Period("week"))
    assert parse_budget({"usd": 2, "period": "rolling", "window": "7d"}) == BudgetSpec(
        2_000_000_000, Period("rolling", 604_800)
    )
    assert parse_budget(None) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"usd": 0, "period": "day"}, "budget.usd: must be more than 0"),
        ({"usd": "ten", "period": "day"}, "budget.usd: Input should be a number"),
        ({"usd": True, "period": "day"}, "budget.usd: Input should be a number"),
        ({"usd": 5, "period": "year"}, "budget.period: Input should be 'day', 'week', 'month' or 'rolling'"),
        ({"usd": 5, "period": "rolling"}, "budget.window: give a duration such as 24h"),
        ({"usd": 5, "period": "rolling", "window": "10s"}, "budget.window: must be between 1m and 366d"),
        ({"usd": 5, "period": "day", "window": "1h"}, "budget.window: only a rolling period takes a window"),
        ({"usd": 5, "period": "day", "dollars": 1}, "budget: unknown key(s) dollars"),
        ([5], "budget: must be a mapping"),
    ],
)
def test_parse_budget_errors(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_budget(raw)
    assert str(caught.value).startswith(message)


ENDPOINT = """
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: mock, name: m, config: {}}
"""


def test_config_budgets_on_endpoints_routes_global_teams_and_alerts() -> None:
    config = parse_config(
        "endpoints:"
        + ENDPOINT
        + "    budget: {usd: 100, period: month}\n"
        + """routes:
  - name: split
    task_type: llm/v1/chat
    destinations: [{name: chat, traffic_percentage: 100}]
    budget: {usd: 10, period: rolling, window: 24h}
budgets:
  global: {usd: 1000, period: month}
  teams: {research: {usd: 200, period: week}, "*": {usd: 50, period: day}}
budget_alerts: {webhook: "https://hooks.example/x", thresholds: [1.0, 0.5]}
"""
    )
    budgets = config.budgets
    assert budgets.scoped["chat"] == BudgetSpec(100_000_000_000, Period("month"))
    assert budgets.scoped["split"] == BudgetSpec(10_000_000_000, Period("rolling", 86_400))
    assert budgets.global_budget == BudgetSpec(1_000_000_000_000, Period("month"))
    assert set(budgets.teams) == {"research", "*"}
    assert budgets.alerts is not None and budgets.alerts.thresholds == (0.5, 1.0)
    assert budgets.configured


def test_no_budgets_configured() -> None:
    assert not parse_config("endpoints:" + ENDPOINT).budgets.configured


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    budget: {usd: -1, period: day}\n", "endpoint 'chat': budget.usd: must be more than 0"),
        ("budgets: {golbal: {usd: 1, period: day}}\n", "budgets: unknown key(s) golbal"),
        ("budgets: {teams: [a]}\n", "budgets.teams: must map team names"),
        ("budgets: {teams: {a: {usd: 1}}}\n", "budgets.teams.a.period: Input should be"),
        (
            "budget_alerts: {webhook: ftp://secret@x}\n",
            "budget_alerts.webhook: must be an http:// or https:// URL",
        ),
        (
            "budget_alerts: {webhook: 'https://x', thresholds: [0]}\n",
            "budget_alerts.thresholds: each must be",
        ),
        ("budget_alerts: {webhook: $NO_SUCH_BUDGET_HOOK}\n", "budget_alerts.webhook: Environment variable"),
    ],
)
def test_config_errors_name_the_field(extra: str, message: str) -> None:
    text = (
        "endpoints:"
        + ENDPOINT
        + (extra if extra.startswith("    ") else "")
        + ("" if extra.startswith("    ") else extra)
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value).startswith(message)
    assert "secret" not in str(caught.value)

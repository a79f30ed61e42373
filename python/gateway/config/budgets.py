"""Budgets in the config: an endpoint's or route's `budget:`, the top-level `budgets:` (global,
teams) and `budget_alerts:`. The admin API checks key and team budgets with `parse_budget` too.

    budget: {usd: 100, period: month}              day | week | month (calendar, UTC)
    budget: {usd: 5, period: rolling, window: 24h} the last 24 hours (window: 1m .. 366d)
    budgets:
      global: {usd: 1000, period: month}
      teams: {research: {usd: 200, period: week}, "*": {usd: 50, period: week}}
    budget_alerts: {webhook: https://hooks.example/..., thresholds: [0.5, 0.8, 1.0]}
"""

from __future__ import annotations

import math
import re
from typing import Any

from gateway.budgets.policy import NANO, PERIODS, AlertsConfig, BudgetsConfig, BudgetSpec, Period
from gateway.config.endpoints import where
from gateway.errors import ConfigError
from gateway.secrets import resolve_secret

MAX_USD = 1_000_000_000  # nano-USD counters stay far inside 64 bits
WINDOW = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
MIN_WINDOW, MAX_WINDOW = 60, 366 * 86_400
BUDGET_KEYS = frozenset(("usd", "period", "window"))
EXAMPLE = "{usd: 100, period: month} (day, week, month, or rolling with window: 24h)"


def parse_budget(raw: Any, field: str = "budget") -> BudgetSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{field}: must be a mapping such as {EXAMPLE}")
    unknown = sorted(str(key) for key in raw if key not in BUDGET_KEYS)
    if unknown:
        raise ConfigError(f"{field}: unknown key(s) {', '.join(unknown)}; known: usd, period, window")
    usd = raw.get("usd")
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd):
        raise ConfigError(f"{field}.usd: Input should be a number of US dollars such as 100 or 2.5")
    if not 0 < usd <= MAX_USD:
        raise ConfigError(f"{field}.usd: must be more than 0 and at most {MAX_USD}")
    kind = raw.get("period")
    if kind not in PERIODS:
        raise ConfigError(f"{field}.period: Input should be 'day', 'week', 'month' or 'rolling'")
    window = raw.get("window")
    if kind != "rolling":
        if window is not None:
            raise ConfigError(f"{field}.window: only a rolling period takes a window")
        return BudgetSpec(round(usd * NANO), Period(kind))
    return BudgetSpec(round(usd * NANO), Period("rolling", _window(window, f"{field}.window")))


def _window(value: Any, field: str) -> int:
    match = WINDOW.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{field}: give a duration such as 24h, 7d, 90m or 2w (period: rolling needs one)")
    seconds = int(match.group(1)) * WINDOW_UNITS[match.group(2).lower()]
    if not MIN_WINDOW <= seconds <= MAX_WINDOW:
        raise ConfigError(f"{field}: must be between 1m and 366d")
    return seconds


def parse_budgets(raw: dict[str, Any]) -> BudgetsConfig:
    """Every budget of a config file (its raw YAML mapping, already checked to hold lists)."""
    scoped: dict[str, BudgetSpec] = {}
    for kind, items in (("endpoint", raw.get("endpoints") or []), ("route", raw.get("routes") or [])):
        for index, item in enumerate(items):
            if not isinstance(item, dict) or item.get("budget") is None:
                continue
            try:
                spec = parse_budget(item["budget"])
            except ConfigError as exc:
                raise ConfigError(f"{where(kind, item, index)}: {exc}") from None
            assert spec is not None
            scoped[str(item.get("name"))] = spec
    top = raw.get("budgets")
    if top is None:
        top = {}
    if not isinstance(top, dict):
        raise ConfigError("budgets: must be a mapping with global and/or teams")
    unknown = sorted(str(key) for key in top if key not in ("global", "teams"))
    if unknown:
        raise ConfigError(f"budgets: unknown key(s) {', '.join(unknown)}; known: global, teams")
    teams_raw = top.get("teams") or {}
    if not isinstance(teams_raw, dict):
        raise ConfigError('budgets.teams: must map team names (or "*" for every other team) to budgets')
    teams: dict[str, BudgetSpec] = {}
    for team, value in teams_raw.items():
        if not isinstance(team, str) or not team.strip():
            raise ConfigError("budgets.teams: team names must be non-empty strings")
        spec = parse_budget(value, f"budgets.teams.{team}")
        if spec is None:
            raise ConfigError(f"budgets.teams.{team}: must be a mapping such as {EXAMPLE}")
        teams[team.strip()] = spec
    return BudgetsConfig(
        global_budget=parse_budget(top.get("global"), "budgets.global"),
        teams=teams,
        scoped=scoped,
        alerts=_alerts(raw.get("budget_alerts")),
    )


def _alerts(raw: Any) -> AlertsConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("budget_alerts: must be a mapping with webhook and thresholds")
    unknown = sorted(str(key) for key in raw if key not in ("webhook", "thresholds"))
    if unknown:
        raise ConfigError(f"budget_alerts: unknown key(s) {', '.join(unknown)}; known: thresholds, webhook")
    try:  # the URL may carry a token (chat webhooks do): `$ENV_VAR` or a file keep it out of the file
        webhook = resolve_secret(raw.get("webhook"))
    except ConfigError as exc:
        raise ConfigError(f"budget_alerts.webhook: {exc}") from None
    if not webhook.startswith(("http://", "https://")):
        # never echo the value: it may be a secret
        raise ConfigError("budget_alerts.webhook: must be an http:// or https:// URL")
    thresholds = raw.get("thresholds", [0.5, 0.8, 1.0])
    if not isinstance(thresholds, list) or not thresholds:
        raise ConfigError(
            "budget_alerts.thresholds: must be a non-empty list of fractions such as [0.5, 0.8, 1.0]"
        )
    for value in thresholds:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 10:
            raise ConfigError(
                "budget_alerts.thresholds: each must be a fraction of the budget above 0 (1.0 = all of it)"
            )
    return AlertsConfig(webhook=webhook, thresholds=tuple(sorted({float(value) for value in thresholds})))

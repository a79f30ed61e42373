"""The Grafana dashboard in deploy/ is a valid dashboard whose every query names metrics the
gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import openai

from tests.integration.configs import openai_config, openai_endpoint
from tests.observe.support import scrape_when, total, value

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "gateway-dashboard.json"
REJECTED = "gateway_limit_rejections_total"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat") and panel["targets"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
    found = [target["expr"] for panel in panels for target in panel["targets"]]
    found += [v["query"]["query"] for v in dashboard["templating"]["list"]]
    for expr in found:
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    return found


def test_every_metric_the_dashboard_queries_is_exported(start_gateway, upstream):
    names = {name for expr in queries() for name in re.findall(r"\bgateway_[a-z_]+", expr)}
    assert {"gateway_requests_total", "gateway_overhead_seconds_bucket", "gateway_tokens_total"} <= names

    extra = openai_endpoint("limited", "chat", "gpt-4o-mini", upstream.base)
    extra += "    limit: {calls: 1, renewal_period: hour}\n"
    extra += openai_endpoint("overloaded", "chat", "err-503-text", upstream.base)
    # one answer (5 + 6 tokens of gpt-4o-mini, $0.00000435) spends this budget
    extra += openai_endpoint("budgeted", "chat", "gpt-4o-mini", upstream.base)
    extra += "    budget: {usd: 0.000001, period: day}\n"
    gateway = start_gateway(openai_config(upstream.base, extra), workers=2)
    statuses = [
        httpx.post(f"{gateway.url}/endpoints/{name}/invocations", json=CHAT, timeout=10).status_code
        for name in ("chat", "limited", "limited", "overloaded", "budgeted", "budgeted")
    ]
    assert statuses == [200, 200, 429, 503, 200, 429]
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    assert list(client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True))

    scrape = scrape_when(gateway.url, lambda found: names <= set(found) and total(found, REJECTED) == 2)
    assert names <= set(scrape), f"queried but not exported: {sorted(names - set(scrape))}"
    assert value(scrape, REJECTED, endpoint="limited", limit="rate") == 1
    assert value(scrape, REJECTED, endpoint="budgeted", limit="budget") == 1

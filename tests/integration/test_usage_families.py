"""Usage per provider family, end to end: OpenAI, Anthropic, Gemini and Bedrock answers, plain
and streamed, each reporting cache reads, cache writes and reasoning in the provider's own wire
shape (tests/support/usage_upstreams.py), go through one gateway process (2 workers, access log,
SQLite usage records) and land exactly in the access log, in `/metrics` and in
`GET /admin/v1/usage`.

The expectations are computed here from what the upstream reported and the endpoint's price,
by the providers' billing rules, not by the gateway's code: every input token (fresh, cache
read, cache write) is a prompt token; cache reads are charged at the cached price, cache writes
at the cache-write price, the rest of the input at the input price, and every output token
(reasoning included) at the output price. Each price differs, so a token counted under the
wrong kind, or not at all, changes the cost."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayProcess, launch
from tests.support.usage_upstreams import Usage, UsageUpstream

ADMIN = "admin-secret-for-usage-families-42"
MESSAGES = [{"role": "user", "content": "What does caching save?"}]
FAMILIES = ("openai", "anthropic", "gemini", "bedrock")
MODELS = {
    "openai": "gpt-4o-2024-08-06",
    "anthropic": "claude-3-5-sonnet-20241022",
    "gemini": "gemini-2.5-flash",
    "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
}
# what each family's upstream reports, plain and streamed (a provider reports only the kinds it
# has: OpenAI and Gemini no cache writes, Anthropic and Bedrock no separate reasoning count)
USAGE = {
    ("openai", False): Usage(fresh=1200, cache_read=1024, output=90, reasoning=64),
    ("openai", True): Usage(fresh=700, cache_read=2048, output=45, reasoning=128),
    ("anthropic", False): Usage(fresh=30, cache_read=5000, cache_write=1500, output=210),
    ("anthropic", True): Usage(fresh=17, cache_read=0, cache_write=2600, output=333),
    ("gemini", False): Usage(fresh=400, cache_read=3000, output=52, reasoning=250),
    ("gemini", True): Usage(fresh=250, cache_read=1000, output=77, reasoning=19),
    ("bedrock", False): Usage(fresh=61, cache_read=4096, cache_write=512, output=120),
    ("bedrock", True): Usage(fresh=9, cache_read=300, cache_write=7000, output=44),
}
# USD per million tokens: input, output, cached input, cache write (all different on purpose)
PRICES = {
    "openai": (2.5, 10.0, 1.25, 3.0),
    "anthropic": (3.0, 15.0, 0.3, 3.75),
    "gemini": (0.3, 2.5, 0.075, 0.5),
    "bedrock": (0.25, 1.25, 0.03, 0.3125),
}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDUSAGEEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "usage-secret/K7MDENG",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Expected:
    prompt: int
    completion: int
    cached: int
    cache_write: int
    reasoning: int
    cost: float

    @staticmethod
    def of(family: str, spent: Usage) -> Expected:
        input_price, output_price, cached_price, write_price = PRICES[family]
        completion = spent.output + spent.reasoning
        cost = (
            spent.fresh * input_price
            + spent.cache_read * cached_price
            + spent.cache_write * write_price
            + completion * output_price
        ) / 1e6
        return Expected(
            prompt=spent.fresh + spent.cache_read + spent.cache_write,
            completion=completion,
            cached=spent.cache_read,
            cache_write=spent.cache_write,
            reasoning=spent.reasoning,
            cost=cost,
        )

    def __add__(self, other: Expected) -> Expected:
        return Expected(
            self.prompt + other.prompt,
            self.completion + other.completion,
            self.cached + other.cached,
            self.cache_write + other.cache_write,
            self.reasoning + other.reasoning,
            self.cost + other.cost,
        )


def expected(family: str, stream: bool | None = None) -> Expected:
    """One answer's counts, or (stream None) the family's plain and streamed answers together."""
    if stream is not None:
        return Expected.of(family, USAGE[(family, stream)])
    return expected(family, False) + expected(family, True)


def endpoint(family: str, upstream: UsageUpstream) -> str:
    configs = {
        "openai": f"{{openai_api_key: sk-usage-secret, openai_api_base: {upstream.url}/v1}}",
        "anthropic": f"{{anthropic_api_key: sk-ant-usage-secret, anthropic_api_base: {upstream.url}/v1}}",
        "gemini": f"{{gemini_api_key: gm-usage-secret, gemini_api_base: {upstream.url}/v1beta/models}}",
        "bedrock": "{aws_config: {aws_region: us-east-1}}",
    }
    input_price, output_price, cached_price, write_price = PRICES[family]
    return f"""
  - name: {family}-chat
    endpoint_type: llm/v1/chat
    model:
      provider: {family}
      name: "{MODELS[family]}"
      config: {configs[family]}
      pricing:
        input_per_million: {input_price}
        output_per_million: {output_price}
        cached_input_per_million: {cached_price}
        cache_write_per_million: {write_price}
"""


@dataclass
class Run:
    gateway: GatewayProcess
    access_log: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    upstream = UsageUpstream(USAGE)
    upstream.start()
    directory = tmp_path_factory.mktemp("usage-families")
    access_log = directory / "access.jsonl"
    config = "endpoints:" + "".join(endpoint(family, upstream) for family in FAMILIES)
    config += f"database_url: sqlite:///{directory}/gateway.db\nauth:\n  admin_key: {ADMIN}\n"
    env = {**AWS_ENV, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": upstream.url}
    gateway = launch(directory, config, workers=2, env=env, extra_args=["--access-log", str(access_log)])
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            for family in FAMILIES:
                answer_plainly(client, family)
                answer_streamed(client, family)
        yield Run(gateway, access_log)
    finally:
        gateway.stop()
        upstream.stop()


def answer_plainly(client: httpx.Client, family: str) -> None:
    """Through the MLflow route; the answer shows the prompt and completion counts."""
    response = client.post(f"/endpoints/{family}-chat/invocations", json={"messages": MESSAGES})
    assert response.status_code == 200, response.text
    counts = expected(family, stream=False)
    usage = response.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (counts.prompt, counts.completion)


def answer_streamed(client: httpx.Client, family: str) -> None:
    """Through /v1 without `include_usage` (the gateway must still get the usage: OpenAI sends
    it only when asked)."""
    body = {"model": f"{family}-chat", "messages": MESSAGES, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, response.read()
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    text = "".join(
        choice["delta"].get("content") or ""
        for line in events[:-1]
        for choice in json.loads(line[6:])["choices"]
    )
    assert text == "Cached answers are cheaper"
    # not asked for a usage chunk: the usage rides on the finish chunk (MLflow's way), once
    usages = [json.loads(line[6:])["usage"] for line in events[:-1]]
    counts = expected(family, stream=True)
    assert [(u["prompt_tokens"], u["completion_tokens"]) for u in usages if u] == [
        (counts.prompt, counts.completion)
    ]


def eventually(check: Any, what: str, timeout: float = 5.0) -> Any:
    """`check()` once it returns without an AssertionError (records and metrics are flushed
    about every second by each worker); bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as failure:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} after {timeout} s: {failure}") from failure
            time.sleep(0.1)


# -- the access log ---------------------------------------------------------------------------
def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    assert len(lines) == 2 * len(FAMILIES)
    return lines


@pytest.mark.parametrize("family", FAMILIES)
def test_the_access_log_has_each_answers_exact_usage_and_cost(run: Run, family: str) -> None:
    lines = eventually(lambda: log_lines(run.access_log), "access log lines")
    mine = {line["stream"]: line for line in lines if line["endpoint"] == f"{family}-chat"}
    assert set(mine) == {False, True}
    for stream, line in mine.items():
        counts = expected(family, stream)
        assert {
            key: line[key]
            for key in (
                "provider",
                "model",
                "status",
                "error",
                "prompt_tokens",
                "completion_tokens",
                "cached_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
                "total_tokens",
                "estimated",
                "priced",
            )
        } == {
            "provider": family,
            "model": MODELS[family],
            "status": 200,
            "error": None,
            "prompt_tokens": counts.prompt,
            "completion_tokens": counts.completion,
            "cached_tokens": counts.cached,
            "cache_write_tokens": counts.cache_write,
            "reasoning_tokens": counts.reasoning,
            "total_tokens": counts.prompt + counts.completion,
            "estimated": False,
            "priced": True,
        }, f"stream={stream}"
        assert line["cost_usd"] == pytest.approx(counts.cost, rel=1e-9, abs=0), f"stream={stream}"
        assert line["route"] == ("openai" if stream else "mlflow")


def test_the_access_log_holds_no_secret_or_prompt(run: Run) -> None:
    eventually(lambda: log_lines(run.access_log), "access log lines")
    text = run.access_log.read_text()
    for secret in (
        "sk-usage-secret",
        "sk-ant-usage-secret",
        "gm-usage-secret",
        AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    ):
        assert secret not in text
    assert MESSAGES[0]["content"] not in text and "Cached answers" not in text


# -- /metrics ---------------------------------------------------------------------------------
def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric_values(url: str, family: str) -> dict[str, float]:
    samples = scrape(url)
    pair = {"endpoint": f"{family}-chat", "provider": family}

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted({**pair, **labels}.items()))), 0.0)

    return {
        **{kind: value("gateway_tokens_total", kind=kind) for kind in Expected.__dataclass_fields__},
        "cost": value("gateway_cost_usd_total"),
        "requests": value("gateway_requests_total", status="200"),
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_metrics_count_each_token_kind_and_the_cost(run: Run, family: str) -> None:
    counts = expected(family)
    want = {
        "prompt": counts.prompt,
        "completion": counts.completion,
        "cached": counts.cached,
        "cache_write": counts.cache_write,
        "reasoning": counts.reasoning,
        "cost": pytest.approx(counts.cost, rel=1e-9, abs=0),
        "requests": 2,
    }

    def check() -> None:
        assert metric_values(run.gateway.url, family) == want

    eventually(check, f"{family} metrics")


# -- the usage API ----------------------------------------------------------------------------
def usage_by_endpoint(url: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(
        f"{url}/admin/v1/usage",
        params={"group_by": "endpoint"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    rows = {row["endpoint"]: row for row in response.json()["usage"]}
    assert sum(row["requests"] for row in rows.values()) == 2 * len(FAMILIES)
    return rows


@pytest.mark.parametrize("family", FAMILIES)
def test_the_usage_api_shows_each_families_exact_totals(run: Run, family: str) -> None:
    rows = eventually(lambda: usage_by_endpoint(run.gateway.url), "usage records")
    counts = expected(family)
    assert rows[f"{family}-chat"] == {
        "endpoint": f"{family}-chat",
        "requests": 2,
        "prompt_tokens": counts.prompt,
        "completion_tokens": counts.completion,
        "cached_tokens": counts.cached,
        "cost_usd": pytest.approx(counts.cost, rel=1e-9, abs=0),
    }

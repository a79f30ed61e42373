"""The retry policy's arithmetic: the provider's asked-for wait, jittered back-off, the budget."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

from gateway._native import SharedLimits
from gateway.config.resilience import RetryConfig
from gateway.routing.policy import RESERVE_RETRIES, RetryBudget, RetryPolicy, asked_wait

NOW = 1_800_000_000.0


def test_the_wait_a_provider_asks_for():
    assert asked_wait([(b"Retry-After", b"2")]) == 2.0
    assert asked_wait([(b"retry-after-ms", b"1500"), (b"retry-after", b"9")]) == 1.5
    date = email.utils.formatdate(NOW + 5, usegmt=True).encode()
    assert asked_wait([(b"retry-after", date)], now=NOW) == 5.0
    assert asked_wait([(b"retry-after", email.utils.formatdate(NOW - 5, usegmt=True).encode())], now=NOW) == 0
    # OpenAI: the reset of the exhausted window only
    openai = [
        (b"x-ratelimit-remaining-requests", b"0"),
        (b"x-ratelimit-reset-requests", b"6m0s"),
        (b"x-ratelimit-remaining-tokens", b"100"),
        (b"x-ratelimit-reset-tokens", b"1h"),
    ]
    assert asked_wait(openai) == 360.0
    reset = (datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
    anthropic = [
        (b"anthropic-ratelimit-tokens-remaining", b"0"),
        (b"anthropic-ratelimit-tokens-reset", reset.encode()),
    ]
    assert asked_wait(anthropic, now=NOW) == 3.0
    assert asked_wait([(b"x-ratelimit-reset-requests", b"1s")]) is None  # nothing exhausted
    assert asked_wait([(b"retry-after", b"soon")]) is None


def test_backoff_doubles_with_jitter_and_a_cap():
    policy = RetryPolicy(RetryConfig(backoff_seconds=1, max_backoff_seconds=3), None)
    for _ in range(200):
        assert 0.5 <= policy.delay(1, None) <= 1
        assert 1 <= policy.delay(2, None) <= 2
        assert 1.5 <= policy.delay(5, None) <= 3
        assert policy.delay(1, 7.0) == 7.0  # the provider's longer wait wins


def test_the_budget_earns_a_ratio_of_first_attempts():
    budget = RetryBudget(SharedLimits.private(), "e", 0.2)
    assert sum(budget.spend() for _ in range(20)) == RESERVE_RETRIES
    for _ in range(50):
        budget.earn()
    assert sum(budget.spend() for _ in range(20)) == 10  # 50 x 0.2

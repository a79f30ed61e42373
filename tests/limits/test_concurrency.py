"""`concurrency`: requests in flight at once per endpoint, exact across workers, given back
when the response or stream ends, when the client hangs up, on errors, and when a worker dies
mid-request."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.limits.configs import config, endpoint
from tests.limits.conftest import CHAT, fire, statuses, wait_for

LIMIT = "calls: 1000\nrenewal_period: hour\nconcurrency: {}"


def test_cap_is_exact_across_workers_and_places_come_back(start_gateway):
    slow = endpoint("slow", LIMIT.format(2), config="{latency_ms: 4000}")
    gateway = start_gateway(config(slow), workers=4)
    url = f"{gateway.url}/endpoints/slow/invocations"
    answers = fire([(url, CHAT)] * 8)
    assert statuses(answers) == {200: 2, 429: 6}, gateway.log()
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json() == {"error": "Rate limit exceeded: 2 concurrent requests"}
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit-limit"] == "2"
    # both places were given back when the responses ended
    assert statuses(fire([(url, CHAT)] * 2)) == {200: 2}


def test_places_come_back_after_errors(start_gateway):
    gateway = start_gateway(config(endpoint("chat", LIMIT.format(1))), workers=2)
    url = f"{gateway.url}/endpoints/chat/invocations"
    for _ in range(4):
        # refused by the provider after admission (MLflow's "model" guard)
        failed = httpx.post(url, json={**CHAT, "model": "other"})
        assert failed.status_code == 422
    assert httpx.post(url, json=CHAT).status_code == 200


def test_places_come_back_when_the_client_hangs_up(start_gateway):
    streaming = endpoint("chat", LIMIT.format(1), config="{chunk_delay_ms: 300, output_tokens: 60}")
    gateway = start_gateway(config(streaming), workers=2)
    url = f"{gateway.url}/endpoints/chat/invocations"
    with httpx.stream("POST", url, json={**CHAT, "stream": True}, timeout=30) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_raw()
        next(chunks)  # under way: about 18 s to go
        assert httpx.post(url, json={**CHAT, "max_tokens": 1}).status_code == 429
    # leaving the block closes the connection mid-stream
    assert wait_for(lambda: httpx.post(url, json={**CHAT, "max_tokens": 1}).status_code == 200, 10)


def _worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_killed_workers_places_are_given_back(start_gateway):
    streaming = endpoint("chat", LIMIT.format(1), config="{chunk_delay_ms: 1000, output_tokens: 60}")
    gateway = start_gateway(config(streaming), workers=1)
    url = f"{gateway.url}/endpoints/chat/invocations"
    [worker] = _worker_pids(gateway.proc.pid)
    started = threading.Event()

    def hold_a_place() -> None:
        try:
            with httpx.stream("POST", url, json={**CHAT, "stream": True}, timeout=60) as stream:
                started.set()
                for _ in stream.iter_raw():
                    pass
        except httpx.HTTPError:
            pass  # the worker dies under it

    holder = threading.Thread(target=hold_a_place)
    holder.start()
    assert started.wait(15)
    os.kill(worker, signal.SIGKILL)
    holder.join(30)
    # Granian starts a new worker; it finds the dead one's place and gives it back
    assert wait_for(lambda: _worker_pids(gateway.proc.pid) not in ([], [worker]), 30), gateway.log()
    deadline = time.monotonic() + 30
    status = 0
    while time.monotonic() < deadline and status != 200:
        try:
            status = httpx.post(url, json={**CHAT, "max_tokens": 1}, timeout=10).status_code
        except httpx.HTTPError:
            time.sleep(0.2)
    assert status == 200, gateway.log()
    assert "in-flight places held by dead worker" in gateway.log()

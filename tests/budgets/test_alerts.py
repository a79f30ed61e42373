"""Budget alerts against a running gateway: a webhook receiver on 127.0.0.1 gets exactly one
POST per threshold crossed, whichever of the 4 workers settled the crossing request, retried
when it answers 5xx, with no secret in it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.budgets.test_budgets import call, endpoint
from tests.limits.conftest import fire, wait_for


class Receiver:
    """Records each POSTed JSON body; answers 503 to the first `failures` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(503)
                else:
                    receiver.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/budget-token-abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_each_threshold_is_alerted_exactly_once_across_workers(start_gateway, upstream):
    receiver = Receiver()
    try:
        config = (
            "endpoints:"
            + endpoint(upstream.base, budget="{usd: 0.04, period: day}")
            + f"budget_alerts: {{webhook: '{receiver.url}', thresholds: [0.5, 1.0]}}\n"
        )
        gateway = start_gateway(config, workers=4)
        url = f"{gateway.url}/v1/chat/completions"
        # concurrent: 8 admitted against the same settled spend, settled by several workers
        fire([(url, {"messages": [{"role": "user", "content": "hi"}], "model": "chat"})] * 8, connections=8)
        for _ in range(3):
            call(gateway.url)
        assert wait_for(lambda: len(receiver.received) >= 2, timeout=10)
        time.sleep(1.0)  # no late duplicates
        alerts = sorted(receiver.received, key=lambda alert: alert["threshold"])
        assert [alert["threshold"] for alert in alerts] == [0.5, 1.0]
        half = alerts[0]
        assert half["budget"] == "endpoint 'chat' daily budget"
        assert (half["scope"], half["name"], half["period"], half["usd"]) == ("endpoint", "chat", "day", 0.04)
        assert 0.02 <= half["spent_usd"] < 0.04 + 0.01 * 8
        assert half["resets_at"].endswith("T00:00:00Z")
        assert "budget-token-abc" not in gateway.log()  # the webhook URL may carry a token
        assert "sk-test" not in json.dumps(alerts)
    finally:
        receiver.close()


def test_an_alert_the_receiver_fails_is_retried(start_gateway, upstream):
    receiver = Receiver(failures=2)
    try:
        config = (
            "endpoints:"
            + endpoint(upstream.base, budget="{usd: 0.02, period: week}")
            + f"budget_alerts: {{webhook: '{receiver.url}', thresholds: [1.0]}}\n"
        )
        gateway = start_gateway(config)
        assert [call(gateway.url).status_code for _ in range(3)] == [200, 200, 429]
        assert wait_for(lambda: len(receiver.received) == 1, timeout=10)
        assert receiver.attempts == 3
        assert receiver.received[0]["threshold"] == 1.0 and receiver.received[0]["spent_usd"] == 0.02
        assert "budget alert sent: endpoint 'chat' weekly budget at 100%" in gateway.log()
    finally:
        receiver.close()

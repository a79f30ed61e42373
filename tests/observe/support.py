"""Helpers for the observability tests: reading a /metrics scrape, an access log, an OTLP
receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.recording import RecordingUpstream

Labels = frozenset[tuple[str, str]]


def samples(text: str) -> dict[str, dict[Labels, float]]:
    """sample name -> {labels: value} of one scrape."""
    found: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def value(scrape: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    """The sample with exactly these labels (0 when absent: a counter never incremented)."""
    return scrape.get(name, {}).get(frozenset(labels.items()), 0.0)


def total(scrape: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    """The sum over every sample whose labels include these."""
    wanted = set(labels.items())
    return sum(v for key, v in scrape.get(name, {}).items() if wanted <= key)


Scrape = dict[str, dict[Labels, float]]


def scrape_when(
    url: str, ready: Callable[[Scrape], bool], key: str | None = None, timeout: float = 10
) -> Scrape:
    """The first scrape for which `ready` holds: each worker writes its counts at least once a
    second (observe/metrics.py FLUSH_SECONDS), so a scrape right after a request may lag."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        found = samples(response.text)
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def access_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text.endswith("\n"), "every line ends with a newline"
    return [json.loads(line) for line in text.splitlines()]


class OtlpReceiver(RecordingUpstream):
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self.traces)

    async def traces(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(status=200, content_type="application/x-protobuf")

    def spans(self) -> list[dict[str, Any]]:
        found = []
        for recorded in list(self.requests):
            export = ExportTraceServiceRequest()
            export.ParseFromString(recorded.raw)
            for resource in export.resource_spans:
                service = {a.key: _any(a.value) for a in resource.resource.attributes}.get("service.name")
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        found.append(
                            {
                                "name": span.name,
                                "service": service,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "status": span.status.code,
                                "attributes": {a.key: _any(a.value) for a in span.attributes},
                            }
                        )
        return found


def _any(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None

"""What one load process measured: counts, histograms and error tallies, mergeable across
processes and rounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.bench.histogram import Histogram

if TYPE_CHECKING:
    from gateway.bench.http1 import ClientConnection


class Recorder:
    def __init__(self) -> None:
        self.latency = Histogram()
        self.ttft = Histogram()
        self.gaps = Histogram()  # between network reads that carry SSE events
        self.lag = Histogram()  # open loop: how late the scheduler fired (client health)
        self.requests = 0
        self.ok = 0
        self.by_status: dict[int, int] = {}
        self.by_kind: dict[str, int] = {}
        self.samples: dict[str, str] = {}  # one error body per status or kind, for the report
        self.streams = 0
        self.without_done = 0
        self.output_tokens = 0
        self.bytes_received = 0
        self.elapsed = 0.0  # the measured window: its start to the last measured completion
        self.cpu_seconds = 0.0
        self.connects = 0

    def response(self, conn: ClientConnection, now: float) -> None:
        self.requests += 1
        self.latency.record_seconds(now - conn.started)
        if conn.error_kind:
            self.error(conn.error_kind, conn.error_body)
        elif conn.status >= 400 or conn.status < 200:
            self.by_status[conn.status] = self.by_status.get(conn.status, 0) + 1
            self.samples.setdefault(str(conn.status), conn.error_body.decode("utf-8", "replace"))
        elif conn.stream_error:
            self.error("stream_error", conn.error_body)
        else:
            self.ok += 1
        if conn.sse and conn.first_event_at:
            self.streams += 1
            self.ttft.record_seconds(conn.first_event_at - conn.started)
            self.output_tokens += conn.output_tokens
            if not conn.done:
                self.without_done += 1

    def failure(self, kind: str, started: float, now: float) -> None:
        """A request that never got a response (no connection, or queued past its timeout)."""
        self.requests += 1
        self.latency.record_seconds(now - started)
        self.error(kind, b"")

    def error(self, kind: str, body: bytes) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if kind not in self.samples and body:
            self.samples[kind] = body.decode("utf-8", "replace")

    @property
    def errors(self) -> int:
        return sum(self.by_status.values()) + sum(self.by_kind.values())

    def merge(self, other: Recorder) -> None:
        for mine, theirs in (
            (self.latency, other.latency),
            (self.ttft, other.ttft),
            (self.gaps, other.gaps),
            (self.lag, other.lag),
        ):
            mine.merge(theirs)
        for status, n in other.by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + n
        for kind, n in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + n
        for key, text in other.samples.items():
            self.samples.setdefault(key, text)
        self.requests += other.requests
        self.ok += other.ok
        self.streams += other.streams
        self.without_done += other.without_done
        self.output_tokens += other.output_tokens
        self.bytes_received += other.bytes_received
        self.elapsed = max(self.elapsed, other.elapsed)  # processes run side by side
        self.cpu_seconds += other.cpu_seconds
        self.connects += other.connects

    def to_dict(self) -> dict[str, Any]:
        return {
            "hists": {name: getattr(self, name).to_dict() for name in ("latency", "ttft", "gaps", "lag")},
            "counts": {
                name: getattr(self, name)
                for name in (
                    "requests",
                    "ok",
                    "streams",
                    "without_done",
                    "output_tokens",
                    "bytes_received",
                    "elapsed",
                    "cpu_seconds",
                    "connects",
                )
            },
            "by_status": self.by_status,
            "by_kind": self.by_kind,
            "samples": self.samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recorder:
        rec = cls()
        for name, hist in data["hists"].items():
            setattr(rec, name, Histogram.from_dict(hist))
        for name, value in data["counts"].items():
            setattr(rec, name, value)
        rec.by_status = {int(k): v for k, v in data["by_status"].items()}
        rec.by_kind = dict(data["by_kind"])
        rec.samples = dict(data["samples"])
        return rec

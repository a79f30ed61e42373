"""`gateway bench` against `gateway mock-upstream` (both as subprocesses): the report's figures
must be sane and consistent. Plus the client's HTTP/SSE parser fed at awkward byte boundaries,
and URL resolution."""

from __future__ import annotations

import csv
import io
import statistics
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.bench import plot
from gateway.bench.histogram import Histogram
from gateway.bench.http1 import ClientConnection, ConnectionOwner
from gateway.bench.targets import resolve
from tests.bench.test_mock_upstream import MockUpstream, start_mock
from tests.conftest import free_port

LATENCY_KEYS = ("p50", "p90", "p99", "p99.9", "max")


def bench(*flags: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway", "bench", *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == expect, result.stderr + result.stdout
    return result


def bench_json(*flags: str) -> dict[str, Any]:
    result = bench(*flags, "--no-progress", "--json")
    report: dict[str, Any] = orjson.loads(result.stdout)
    assert "gateway bench" in result.stderr  # the table goes to stderr when JSON takes stdout
    return report


def assert_consistent(run: dict[str, Any]) -> None:
    assert run["requests"] == run["ok"] + run["errors"]
    assert run["errors"] == sum(run["errors_by_status"].values()) + sum(run["errors_by_kind"].values())
    latency = [run["latency_ms"][key] for key in LATENCY_KEYS]
    assert latency == sorted(latency), latency
    assert latency[0] > 0
    if "elapsed_s" in run:
        assert run["rps"] == pytest.approx(run["requests"] / run["elapsed_s"], rel=0.01)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    yield from start_mock("--chunks", "10", "--embed-dim", "64")


def test_closed_loop(mock: MockUpstream) -> None:
    report = bench_json(f"{mock.base}/v1", "-c", "8", "-d", "2", "--warmup", "0.5")
    assert report["settings"]["mode"] == "closed"
    (run,) = report["runs"]
    assert_consistent(run)
    assert run["errors"] == 0 and run["ok"] > 200
    assert 1.9 <= run["elapsed_s"] <= 3.5
    assert run["stream"] is None
    assert run["client"]["processes"] == 1 and 0 < run["client"]["cpu_pct"] <= 110
    (result,) = report["results"]
    assert result["rps"] == run["rps"] and result["rounds"] == 1
    assert report["targets"][0]["url"] == f"{mock.base}/v1/chat/completions"


def test_open_loop_holds_the_rate(mock: MockUpstream) -> None:
    report = bench_json(
        f"{mock.base}/v1", "--kind", "embeddings", "--rate", "200", "-d", "3", "--warmup", "0.5"
    )
    (run,) = report["runs"]
    assert_consistent(run)
    assert run["offered_rps"] == 200
    assert run["rps"] == pytest.approx(200, rel=0.1)
    assert run["requests"] == pytest.approx(600, rel=0.1)
    assert run["errors"] == 0
    assert report["targets"][0]["kind"] == "embeddings"


def test_stream_figures(mock: MockUpstream) -> None:
    report = bench_json(
        f"{mock.base}/v1/chat/completions",
        "--stream",
        "--include-usage",
        "-c",
        "4",
        "-d",
        "2",
        "--warmup",
        "0.3",
    )
    (run,) = report["runs"]
    assert_consistent(run)
    stream = run["stream"]
    assert stream["streams"] == run["ok"] > 50
    assert stream["tokens_per_stream"] == 10  # the usage chunk's completion_tokens
    assert stream["without_done"] == 0
    assert stream["output_tokens"] == 10 * stream["streams"]
    assert stream["output_tokens_per_s"] == pytest.approx(10 * run["rps"], rel=0.02)
    ttft = [stream["ttft_ms"][key] for key in LATENCY_KEYS]
    assert ttft == sorted(ttft)
    assert stream["ttft_ms"]["p50"] <= run["latency_ms"]["p50"]


def test_paced_stream_gaps(mock: MockUpstream) -> None:
    body = orjson.dumps({"model": "mock-delay-20ms", "messages": [{"role": "user", "content": "hi"}]})
    report = bench_json(
        f"{mock.base}/v1", "--body", body.decode(), "--stream", "-c", "2", "-d", "1.5", "--warmup", "0"
    )
    (run,) = report["runs"]
    assert_consistent(run)
    gaps = run["stream"]["inter_chunk_ms"]
    assert 15 <= gaps["p50"] <= 60  # the mock waits 20 ms before each chunk
    assert run["latency_ms"]["p50"] >= 10 * 20  # 10 paced chunks
    assert run["stream"]["tokens_per_stream"] == 8  # no usage asked for: content-bearing events


def test_compare_mock_with_itself(mock: MockUpstream) -> None:
    # an open loop: both targets get the same offered rate, so the ratio is about 1 even on a
    # busy machine; the ratio and the added latency must follow from the per-round figures
    flags = ["--name", "direct", "--name", "again", "--rate", "300", "-d", "1", "--warmup", "0.3"]
    report = bench_json(
        f"{mock.base}/v1", "--compare", f"{mock.base}/v1/chat/completions", *flags, "--rounds", "2"
    )
    assert [run["target"] for run in report["runs"]] == ["direct", "again", "again", "direct"]  # alternating
    for run in report["runs"]:
        assert_consistent(run)
    first, second = report["results"]
    assert first["rounds"] == second["rounds"] == 2
    assert first["requests"] == sum(r["requests"] for r in report["runs"] if r["target"] == "direct")
    direct = [r for r in report["runs"] if r["target"] == "direct"]
    again = sorted((r for r in report["runs"] if r["target"] == "again"), key=lambda r: r["round"])
    ratios = [b["rps"] / a["rps"] for a, b in zip(direct, again, strict=True)]
    assert second["vs_first"]["rps_ratio"] == pytest.approx(statistics.median(ratios), abs=1e-3)
    assert 0.9 <= second["vs_first"]["rps_ratio"] <= 1.1
    added = [b["latency_ms"]["p50"] - a["latency_ms"]["p50"] for a, b in zip(direct, again, strict=True)]
    assert second["vs_first"]["added_latency_ms"]["p50"] == pytest.approx(statistics.median(added), abs=1e-3)
    assert abs(second["vs_first"]["added_latency_ms"]["p50"]) < 5
    assert first["rps"] == pytest.approx(statistics.median(r["rps"] for r in direct), abs=1e-3)


@pytest.fixture(scope="module")
def flaky_mock() -> Iterator[MockUpstream]:
    yield from start_mock("--error-rate", "0.3", "--error-status", "503")


def test_injected_errors_counted_by_status(flaky_mock: MockUpstream) -> None:
    result = bench(
        f"{flaky_mock.base}/v1", "-c", "4", "-n", "1000", "--warmup", "0", "--no-progress", "--csv"
    )
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["round"] for row in rows] == ["1", "median"]
    run = rows[0]
    requests, ok, errors = int(run["requests"]), int(run["ok"]), int(run["errors"])
    assert requests == 1000 and ok + errors == requests
    assert 0.2 <= errors / requests <= 0.4
    assert "HTTP 503 ×" in result.stderr and "Injected error 503" in result.stderr
    report = bench_json(f"{flaky_mock.base}/v1", "-c", "4", "-n", "400", "--warmup", "0")
    (run,) = report["runs"]
    assert_consistent(run)
    assert set(run["errors_by_status"]) == {"503"} and run["errors_by_kind"] == {}
    assert "Injected error 503" in run["error_samples"]["503"]


def test_timeouts_and_refused_connections() -> None:
    slow = MockUpstream("--latency-ms", "400")
    try:
        report = bench_json(slow.base, "-c", "2", "-d", "1", "--warmup", "0", "--timeout", "0.1")
    finally:
        slow.stop()
    (run,) = report["runs"]
    assert_consistent(run)
    assert run["ok"] == 0 and run["errors_by_kind"].get("timeout", 0) >= 2
    report = bench_json(f"http://127.0.0.1:{free_port()}/v1", "-c", "2", "-d", "0.5", "--warmup", "0")
    (run,) = report["runs"]
    assert run["ok"] == 0 and run["errors_by_kind"].get("connect", 0) >= 2
    assert run["requests"] == run["errors"]


def test_two_load_processes_merge(mock: MockUpstream) -> None:
    report = bench_json(f"{mock.base}/v1", "-c", "4", "-n", "2000", "--processes", "2", "--warmup", "0.2")
    (run,) = report["runs"]
    assert_consistent(run)
    assert run["requests"] == 2000 and run["errors"] == 0
    assert run["client"]["processes"] == 2


def test_sweep_reports_the_highest_rate_within_the_bound(mock: MockUpstream) -> None:
    report = bench_json(
        f"{mock.base}/v1",
        "--sweep",
        "--sweep-start",
        "50",
        "--sweep-factor",
        "2",
        "--sweep-steps",
        "2",
        "--sweep-p99-ms",
        "500",
        "-d",
        "1",
        "--warmup",
        "0.2",
    )
    (sweep,) = report["sweeps"]
    assert [step["rate"] for step in sweep["steps"]] == [50, 100]
    assert all(step["within_bound"] for step in sweep["steps"])
    assert sweep["reached_step_limit"] is True
    assert sweep["max_sustained_rate"] == 100
    assert sweep["max_sustained_rps"] == pytest.approx(100, rel=0.15)


def test_plot_needs_matplotlib_or_writes_a_png(mock: MockUpstream, tmp_path: Any) -> None:
    path = tmp_path / "out.png"
    flags = (f"{mock.base}/v1", "-c", "2", "-d", "0.5", "--warmup", "0", "--plot", str(path))
    if plot.available():
        bench(*flags)
        assert path.read_bytes().startswith(b"\x89PNG")
    else:
        result = bench(*flags, expect=2)
        assert "--plot needs matplotlib" in result.stderr and "gateway[bench]" in result.stderr
        assert not path.exists()


def test_bad_flags() -> None:
    assert "give a target URL" in bench(expect=2).stderr
    result = bench("http://127.0.0.1:1/v1", "--kind", "embeddings", "--stream", expect=2)
    assert "embeddings do not stream" in result.stderr
    result = bench("http://127.0.0.1:1/v1/embeddings", "--kind", "chat", expect=2)
    assert "is a embeddings URL but --kind is chat" in result.stderr


def test_url_resolution() -> None:
    assert resolve("http://h:5000", None, None, None, None).path == "/v1/chat/completions"
    target = resolve("https://api.example.com/v1", "embeddings", None, "m", None)
    assert (target.path, target.port, target.tls, target.kind) == ("/v1/embeddings", 443, True, "embeddings")
    mlflow = resolve("http://h:5000", "completions", "comp", None, None)
    assert (mlflow.path, mlflow.mlflow, mlflow.kind) == ("/endpoints/comp/invocations", True, "completions")
    assert resolve("http://h:5000/v1", None, "comp", None, None).path == "/v1/chat/completions"
    gateway = resolve("http://h:5000/gateway/chat/invocations", None, None, None, "gw")
    assert (gateway.name, gateway.mlflow, gateway.kind) == ("gw", True, "chat")
    assert resolve("h:1/v1/completions", None, None, None, None).kind == "completions"


class Collector(ConnectionOwner):
    def __init__(self) -> None:
        self.finished: list[tuple[int, int, int, bool, bool, str]] = []

    def on_response(self, conn: ClientConnection) -> None:
        self.finished.append(
            (conn.status, conn.events, conn.output_tokens, conn.done, conn.stream_error, conn.error_kind)
        )

    def on_closed(self, conn: ClientConnection) -> None:
        pass


class FakeTransport:
    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass


def feed(response: bytes, step: int) -> Collector:
    owner = Collector()
    conn = ClientConnection(owner, Histogram())
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    conn.send(b"", 0.0, True)
    for i in range(0, len(response), step):
        conn.data_received(response[i : i + step])
    return owner


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 100000])
def test_client_parses_chunked_sse_at_any_split(step: int) -> None:
    events = [
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\r\n\r\n',
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n: keep-alive comment\n\n',
        b"data: [DONE]\n\n",
    ]
    owner = feed(SSE_HEAD + chunked(events[0], events[1][:9], events[1][9:], events[2], events[3]), step)
    assert owner.finished == [(200, 4, 2, True, False, "")]


@pytest.mark.parametrize("step", [1, 5, 100000])
def test_client_sees_error_events_and_error_statuses(step: int) -> None:
    body = chunked(
        b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n', b'data: {"error": {"message": "boom"}}\n\n'
    )
    assert feed(SSE_HEAD + body, step).finished == [(200, 2, 1, False, True, "")]
    error = b'{"detail": "upstream said no"}'
    response = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: %d\r\n\r\n%s" % (len(error), error)
    assert feed(response, step).finished == [(429, 0, 0, False, False, "")]


def test_histogram_percentiles() -> None:
    hist = Histogram()
    for micros in range(1, 100001):
        hist.record(micros)
    assert hist.percentile(50) == pytest.approx(50000, rel=0.005)
    assert hist.percentile(99) == pytest.approx(99000, rel=0.005)
    assert hist.percentile(100) == 100000 and hist.max == 100000
    merged = Histogram.from_dict(hist.to_dict())
    merged.merge(hist)
    assert merged.count == 200000 and merged.percentile(50) == pytest.approx(50000, rel=0.005)

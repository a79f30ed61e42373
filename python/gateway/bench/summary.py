"""Figures from recorders: one run's summary, medians over rounds, and the comparison with
the first target (ratio of throughput, added latency), all plain dicts for JSON and CSV."""

from __future__ import annotations

import statistics
from typing import Any

from gateway.bench.stats import Recorder

SATURATED_CPU_PCT = 85.0  # a load process busier than this is the bottleneck, not the target
LAGGING_MS = 10.0  # open loop: the scheduler firing this late (p99) means the client fell behind
PERCENTILES = ("p50", "p90", "p99", "p99.9", "max", "mean")


def summarize(rec: Recorder, processes: int, rate: float | None, connections: int) -> dict[str, Any]:
    elapsed = rec.elapsed
    cpu_pct = 100.0 * rec.cpu_seconds / elapsed if elapsed > 0 else 0.0
    per_process = cpu_pct / max(processes, 1)
    lag_p99 = rec.lag.percentile(99) / 1000.0 if rate is not None else 0.0
    saturated = per_process >= SATURATED_CPU_PCT or lag_p99 > LAGGING_MS
    reasons = []
    if per_process >= SATURATED_CPU_PCT:
        reasons.append(f"load process CPU {per_process:.0f}% of a core")
    if lag_p99 > LAGGING_MS:
        reasons.append(f"open-loop scheduler late by {lag_p99:.1f} ms at p99")
    summary: dict[str, Any] = {
        "requests": rec.requests,
        "ok": rec.ok,
        "errors": rec.errors,
        "errors_by_status": {str(k): v for k, v in sorted(rec.by_status.items())},
        "errors_by_kind": dict(sorted(rec.by_kind.items())),
        "error_samples": rec.samples,
        "elapsed_s": round(elapsed, 6),
        "rps": round(rec.requests / elapsed, 1) if elapsed > 0 else 0.0,
        "ok_rps": round(rec.ok / elapsed, 1) if elapsed > 0 else 0.0,
        "offered_rps": rate,
        "connections": connections,
        "connects": rec.connects,
        "latency_ms": rec.latency.summary_ms(),
        "bytes_received": rec.bytes_received,
        "stream": None,
        "client": {
            "processes": processes,
            "cpu_pct": round(cpu_pct, 1),
            "cpu_pct_per_process": round(per_process, 1),
            "scheduler_lag_p99_ms": round(lag_p99, 3),
            # the harness's own cost: CPU per request, and the rate one core of it could drive
            "cpu_us_per_request": round(1e6 * rec.cpu_seconds / rec.requests, 1) if rec.requests else 0.0,
            "saturated": saturated,
            "reason": "; ".join(reasons),
        },
    }
    if rec.streams:
        summary["stream"] = {
            "streams": rec.streams,
            "ttft_ms": rec.ttft.summary_ms(),
            "inter_chunk_ms": rec.gaps.summary_ms(),
            "output_tokens": rec.output_tokens,
            "output_tokens_per_s": round(rec.output_tokens / elapsed, 1) if elapsed > 0 else 0.0,
            "tokens_per_stream": round(rec.output_tokens / rec.streams, 1),
            "without_done": rec.without_done,
        }
    return summary


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def _median_block(runs: list[dict[str, Any]], get: Any) -> dict[str, float]:
    blocks = [get(run) for run in runs if get(run)]
    return {key: _median([block[key] for block in blocks]) for key in PERCENTILES} if blocks else {}


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's rounds: medians of rates and percentiles, sums of counts."""
    by_status: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    samples: dict[str, str] = {}
    for run in runs:
        for key, n in run["errors_by_status"].items():
            by_status[key] = by_status.get(key, 0) + n
        for key, n in run["errors_by_kind"].items():
            by_kind[key] = by_kind.get(key, 0) + n
        for key, text in run["error_samples"].items():
            samples.setdefault(key, text)
    combined: dict[str, Any] = {
        "rounds": len(runs),
        "requests": sum(run["requests"] for run in runs),
        "ok": sum(run["ok"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "errors_by_status": by_status,
        "errors_by_kind": by_kind,
        "error_samples": samples,
        "rps": _median([run["rps"] for run in runs]),
        "rps_min": min(run["rps"] for run in runs),
        "rps_max": max(run["rps"] for run in runs),
        "ok_rps": _median([run["ok_rps"] for run in runs]),
        "offered_rps": runs[0]["offered_rps"],
        "connections": runs[0]["connections"],
        "latency_ms": _median_block(runs, lambda run: run["latency_ms"]),
        "stream": None,
        "client": {
            "processes": runs[0]["client"]["processes"],
            "cpu_pct": _median([run["client"]["cpu_pct"] for run in runs]),
            "cpu_pct_per_process": max(run["client"]["cpu_pct_per_process"] for run in runs),
            "cpu_us_per_request": _median([run["client"]["cpu_us_per_request"] for run in runs]),
            "saturated": any(run["client"]["saturated"] for run in runs),
            "reason": "; ".join(sorted({run["client"]["reason"] for run in runs if run["client"]["reason"]})),
        },
    }
    streamed = [run for run in runs if run["stream"]]
    if streamed:
        combined["stream"] = {
            "streams": sum(run["stream"]["streams"] for run in streamed),
            "ttft_ms": _median_block(streamed, lambda run: run["stream"]["ttft_ms"]),
            "inter_chunk_ms": _median_block(streamed, lambda run: run["stream"]["inter_chunk_ms"]),
            "output_tokens": sum(run["stream"]["output_tokens"] for run in streamed),
            "output_tokens_per_s": _median([run["stream"]["output_tokens_per_s"] for run in streamed]),
            "tokens_per_stream": _median([run["stream"]["tokens_per_stream"] for run in streamed]),
            "without_done": sum(run["stream"]["without_done"] for run in streamed),
        }
    return combined


def compare(first: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    """Per round: the other target's figure over / minus the first's; then the median."""
    pairs = list(zip(first, other, strict=False))
    ratio = [b["rps"] / a["rps"] for a, b in pairs if a["rps"] > 0]
    added = {
        key: _median([b["latency_ms"][key] - a["latency_ms"][key] for a, b in pairs])
        for key in ("p50", "p90", "p99", "p99.9")
    }
    result: dict[str, Any] = {"rps_ratio": round(statistics.median(ratio), 4) if ratio else None}
    result["added_latency_ms"] = added
    streamed = [(a, b) for a, b in pairs if a["stream"] and b["stream"]]
    if streamed:
        result["added_ttft_ms"] = {
            key: _median([b["stream"]["ttft_ms"][key] - a["stream"]["ttft_ms"][key] for a, b in streamed])
            for key in ("p50", "p90", "p99")
        }
    return result

"""The report's three forms: a readable table, JSON, and CSV (one row per run and per median)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000 or digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _plural(count: int, noun: str, suffix: str = "s") -> str:
    return f"{count:,} {noun}{'' if count == 1 else suffix}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = []
    for cells in [headers, *rows]:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def describe(report: dict[str, Any]) -> str:
    s = report["settings"]
    kinds = sorted({t["kind"] for t in report["targets"]})
    if s["mode"] == "sweep":
        sweep = s["sweep"]
        load = f"open-loop rate sweep from {sweep['start']:g}/s ×{sweep['factor']:g}, p99 bound {sweep['p99_ms']:g} ms"
    elif s["mode"] == "open":
        load = f"open loop at {s['rate']:,.0f} req/s (up to {s['connections']} connections)"
    else:
        load = f"closed loop, {_plural(s['connections'], 'connection')}"
    amount = f"{s['duration_s']:g} s" if not s["max_requests"] else f"{s['max_requests']:,} requests"
    stream = " streaming" if s["stream"] else ""
    rounds = f"{s['rounds']} rounds (medians)" if s["rounds"] > 1 and s["mode"] != "sweep" else "1 round"
    return (
        f"gateway bench · {'/'.join(kinds)}{stream} · {load} · {amount} per run after "
        f"{s['warmup_s']:g} s warm-up · {rounds} · {_plural(s['processes'], 'load process', 'es')}"
    )


def _latency_row(name: str, result: dict[str, Any]) -> list[str]:
    lat = result["latency_ms"]
    return [
        name,
        _num(result["rps"], 0),
        f"{result['requests']:,}",
        f"{result['ok']:,}",
        f"{result['errors']:,}",
        *(_num(lat.get(key)) for key in ("p50", "p90", "p99", "p99.9", "max")),
    ]


def _errors_lines(result: dict[str, Any]) -> list[str]:
    parts = [f"HTTP {status} ×{n:,}" for status, n in result["errors_by_status"].items()]
    parts += [f"{kind} ×{n:,}" for kind, n in result["errors_by_kind"].items()]
    if not parts:
        return []
    lines = [f"  errors of {result['target']}: " + ", ".join(parts)]
    for key, sample in list(result["error_samples"].items())[:3]:
        if sample:
            lines.append(f"    {key}: {sample[:160]}")
    return lines


def _client_line(results: list[dict[str, Any]]) -> str:
    saturated = [r for r in results if r["client"]["saturated"]]
    cpu = max(r["client"]["cpu_pct_per_process"] for r in results)
    processes = results[0]["client"]["processes"]
    if saturated:
        reasons = "; ".join(sorted({r["client"]["reason"] for r in saturated}))
        return (
            f"WARNING: the load client was saturated ({reasons}): these figures are the client's limit, "
            "not the target's. Rerun with more --processes (or fewer connections)."
        )
    cost = max(r["client"]["cpu_us_per_request"] for r in results)
    capacity = f", about {1e6 / cost:,.0f} req/s per core" if cost > 0 else ""
    return (
        f"client: {_plural(processes, 'load process', 'es')}, at most {cpu:.0f}% of one core each "
        f"({cost:.0f} µs of CPU per request{capacity}): not the bottleneck"
    )


def render_table(report: dict[str, Any]) -> str:
    out = [describe(report), ""]
    if report["sweeps"]:
        return "\n".join(out + [render_sweeps(report["sweeps"])])
    results = report["results"]
    headers = [
        "target",
        "req/s",
        "requests",
        "ok",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
    ]
    out.append(table(headers, [_latency_row(r["target"], r) for r in results]))
    streamed = [r for r in results if r["stream"]]
    if streamed:
        out += ["", "streams (TTFT = first SSE event; gap = between reads carrying events)"]
        rows = []
        for r in streamed:
            st = r["stream"]
            rows.append(
                [
                    r["target"],
                    _num(st["ttft_ms"].get("p50")),
                    _num(st["ttft_ms"].get("p90")),
                    _num(st["ttft_ms"].get("p99")),
                    _num(st["inter_chunk_ms"].get("p50")),
                    _num(st["inter_chunk_ms"].get("p99")),
                    _num(st["output_tokens_per_s"], 0),
                    _num(st["tokens_per_stream"], 1),
                    f"{st['without_done']:,}",
                ]
            )
        headers = [
            "target",
            "TTFT p50",
            "TTFT p90",
            "TTFT p99",
            "gap p50",
            "gap p99",
            "tokens/s",
            "tok/stream",
        ]
        out.append(table([*headers, "no [DONE]"], rows))
    if len(results) > 1:
        out += ["", f"compared with {results[0]['target']} (medians of per-round ratios and differences)"]
        rows = []
        for r in results[1:]:
            vs = r["vs_first"]
            added = vs["added_latency_ms"]
            ttft = vs.get("added_ttft_ms", {})
            rows.append(
                [
                    r["target"],
                    _num(vs["rps_ratio"], 3) if vs["rps_ratio"] is not None else "-",
                    *(_signed(added[key]) for key in ("p50", "p90", "p99", "p99.9")),
                    _signed(ttft.get("p50")),
                ]
            )
        headers = ["target", "× req/s", "+p50 ms", "+p90 ms", "+p99 ms", "+p99.9 ms", "+TTFT p50"]
        out.append(table(headers, rows))
    errors = [line for r in results for line in _errors_lines(r)]
    if errors:
        out += ["", *errors]
    out += ["", _client_line(results)]
    return "\n".join(out)


def render_sweeps(sweeps: list[dict[str, Any]]) -> str:
    out = []
    for sweep in sweeps:
        rows = [
            [
                _num(step["rate"], 0),
                _num(step["rps"], 0),
                _num(step["latency_ms"]["p50"]),
                _num(step["latency_ms"]["p99"]),
                f"{step['errors']:,}",
                "yes" if step["within_bound"] else "no",
            ]
            for step in sweep["steps"]
        ]
        out.append(f"{sweep['target']}")
        headers = ["offered/s", "achieved/s", "p50 ms", "p99 ms", "errors", "within"]
        out.append(table(headers, rows))
        verdict = f"highest sustained rate with p99 ≤ {sweep['p99_bound_ms']:g} ms: {sweep['max_sustained_rps']:,.0f} req/s"
        if sweep["reached_step_limit"]:
            verdict += " (the step limit came first: the real limit is higher)"
        if sweep["client_limited"]:
            verdict += " WARNING: the load client saturated during the sweep; add --processes"
        out += [verdict, ""]
    return "\n".join(out).rstrip()


def render_json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()


CSV_FIELDS = [
    "target",
    "round",
    "offered_rps",
    "connections",
    "requests",
    "ok",
    "errors",
    "rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p99.9_ms",
    "max_ms",
    "mean_ms",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "gap_p50_ms",
    "gap_p99_ms",
    "output_tokens_per_s",
    "rps_ratio",
    "added_p50_ms",
    "added_p99_ms",
    "client_cpu_pct",
    "client_saturated",
]


def _csv_row(target: str, label: str, run: dict[str, Any]) -> dict[str, Any]:
    lat = run["latency_ms"]
    stream = run.get("stream") or {}
    vs = run.get("vs_first") or {}
    added = vs.get("added_latency_ms", {})
    return {
        "target": target,
        "round": label,
        "offered_rps": run.get("offered_rps") or "",
        "connections": run.get("connections"),
        "requests": run["requests"],
        "ok": run["ok"],
        "errors": run["errors"],
        "rps": run["rps"],
        **{f"{key}_ms": lat.get(key) for key in ("p50", "p90", "p99", "p99.9", "max", "mean")},
        "ttft_p50_ms": stream.get("ttft_ms", {}).get("p50", ""),
        "ttft_p99_ms": stream.get("ttft_ms", {}).get("p99", ""),
        "gap_p50_ms": stream.get("inter_chunk_ms", {}).get("p50", ""),
        "gap_p99_ms": stream.get("inter_chunk_ms", {}).get("p99", ""),
        "output_tokens_per_s": stream.get("output_tokens_per_s", ""),
        "rps_ratio": vs.get("rps_ratio", ""),
        "added_p50_ms": added.get("p50", ""),
        "added_p99_ms": added.get("p99", ""),
        "client_cpu_pct": run["client"]["cpu_pct"],
        "client_saturated": run["client"]["saturated"],
    }


def render_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for run in report["runs"]:
        writer.writerow(_csv_row(run["target"], str(run["round"]), run))
    for result in report["results"]:
        writer.writerow(_csv_row(result["target"], "median", result))
    for sweep in report["sweeps"]:
        for step in sweep["steps"]:
            writer.writerow(_csv_row(sweep["target"], f"sweep@{step['rate']:g}", step))
    return buffer.getvalue()

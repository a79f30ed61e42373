"""`--plot out.png`: latency percentiles and throughput per target (or p99 against the offered
rate for a sweep). matplotlib is an optional extra: `pip install 'gateway[bench]'`."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

MISSING = "--plot needs matplotlib, which is not installed: pip install 'gateway[bench]' (or matplotlib>=3.8)"
PERCENTILES = ("p50", "p90", "p99", "p99.9")


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only, no display
    return importlib.import_module("matplotlib.pyplot")


def write_plot(report: dict[str, Any], path: str) -> None:
    plt = _pyplot()
    if report["sweeps"]:
        figure, (latency_axis, rate_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
        for sweep in report["sweeps"]:
            steps = sorted(sweep["steps"], key=lambda step: step["rate"])
            rates = [step["rate"] for step in steps]
            latency_axis.plot(
                rates, [step["latency_ms"]["p99"] for step in steps], marker="o", label=sweep["target"]
            )
            rate_axis.plot(rates, [step["rps"] for step in steps], marker="o", label=sweep["target"])
        bound = report["sweeps"][0]["p99_bound_ms"]
        latency_axis.axhline(bound, color="grey", linestyle="--", label=f"bound {bound:g} ms")
        latency_axis.set(xlabel="offered req/s", ylabel="p99 latency (ms)", title="p99 against offered rate")
        latency_axis.set_yscale("log")
        rate_axis.set(xlabel="offered req/s", ylabel="achieved req/s", title="throughput")
        latency_axis.legend()
        rate_axis.legend()
    else:
        results = report["results"]
        names = [result["target"] for result in results]
        figure, (latency_axis, rate_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
        width = 0.8 / len(PERCENTILES)
        for i, key in enumerate(PERCENTILES):
            values = [result["latency_ms"].get(key, 0.0) for result in results]
            positions = [n + (i - (len(PERCENTILES) - 1) / 2) * width for n in range(len(results))]
            latency_axis.bar(positions, values, width, label=key)
        latency_axis.set_xticks(range(len(results)), names, rotation=15, ha="right")
        latency_axis.set(ylabel="latency (ms)", title="latency percentiles")
        latency_axis.set_yscale("log")
        latency_axis.legend()
        rate_axis.bar(range(len(results)), [result["rps"] for result in results], color="tab:green")
        rate_axis.set_xticks(range(len(results)), names, rotation=15, ha="right")
        rate_axis.set(ylabel="requests/s", title="throughput")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

"""Runs a bench: rounds over one or more targets (in alternating order, so drift on a shared
machine hits every target alike), or a rate sweep per target; returns the report dict."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gateway.bench.load import LoadPlan
from gateway.bench.progress import ProgressBar
from gateway.bench.summary import combine, compare, summarize
from gateway.bench.targets import Target
from gateway.bench.workers import run_plan


@dataclass(frozen=True)
class Sweep:
    p99_ms: float  # the bound: the highest rate whose p99 stays under it wins
    start: float
    factor: float
    steps: int
    refine: int
    max_error_rate: float


@dataclass(frozen=True)
class Settings:
    targets: list[Target]
    requests: list[tuple[bytes, ...]]  # pre-rendered, per target
    connections: int
    rate: float | None
    duration: float
    max_requests: int | None
    warmup: float
    rounds: int
    timeout: float
    processes: int
    insecure: bool = False
    sweep: Sweep | None = None
    stream: bool = False


class Runner:
    def __init__(self, settings: Settings, progress: ProgressBar) -> None:
        self.settings = settings
        self.progress = progress

    def measure(self, index: int, rate: float | None, label: str) -> dict[str, Any]:
        s = self.settings
        target = s.targets[index]
        plan = LoadPlan(
            host=target.host,
            port=target.port,
            tls=target.tls,
            requests=s.requests[index],
            connections=s.connections,
            rate=rate,
            warmup=s.warmup,
            duration=s.duration,
            max_requests=s.max_requests,
            timeout=s.timeout,
            insecure=s.insecure,
        )
        self.progress.begin(label, s.warmup, s.duration, s.max_requests)
        try:
            recorder = run_plan(plan, s.processes, self.progress.update)
        finally:
            self.progress.end()
        return summarize(recorder, min(s.processes, s.connections), rate, s.connections)

    def run(self) -> dict[str, Any]:
        s = self.settings
        report: dict[str, Any] = {
            "tool": "gateway bench",
            "version": 1,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "settings": {
                "mode": "sweep" if s.sweep else ("open" if s.rate is not None else "closed"),
                "stream": s.stream,
                "connections": s.connections,
                "rate": s.rate,
                "duration_s": s.duration,
                "max_requests": s.max_requests,
                "warmup_s": s.warmup,
                "rounds": s.rounds,
                "timeout_s": s.timeout,
                "processes": s.processes,
                "sweep": s.sweep.__dict__ if s.sweep else None,
            },
            "targets": [
                {"name": t.name, "url": t.url, "kind": t.kind, "mlflow_route": t.mlflow, "model": t.model}
                for t in s.targets
            ],
            "runs": [],
            "results": [],
            "sweeps": [],
        }
        if s.sweep is not None:
            report["sweeps"] = [self.sweep(i, s.sweep) for i in range(len(s.targets))]
            return report
        runs: list[list[dict[str, Any]]] = [[] for _ in s.targets]
        for round_index in range(s.rounds):
            order = list(range(len(s.targets)))
            if round_index % 2:
                order.reverse()
            for i in order:
                label = f"{s.targets[i].name} · round {round_index + 1}/{s.rounds}"
                run = self.measure(i, s.rate, label)
                runs[i].append(run)
                report["runs"].append({"target": s.targets[i].name, "round": round_index + 1, **run})
        for i, target in enumerate(s.targets):
            result = {"target": target.name, **combine(runs[i])}
            if len(s.targets) > 1:
                result["vs_first"] = compare(runs[0], runs[i])
            report["results"].append(result)
        return report

    def sweep(self, index: int, sweep: Sweep) -> dict[str, Any]:
        """Raise the open-loop rate by `factor` until p99 passes the bound (or errors pass the
        allowed share, or the target stops keeping up), then bisect between the last rate
        within the bound and the first beyond it."""
        target = self.settings.targets[index]
        steps: list[dict[str, Any]] = []
        good: float | None = None
        bad: float | None = None
        client_limited = False

        def step(rate: float) -> bool:
            nonlocal client_limited
            run = self.measure(index, rate, f"{target.name} · sweep {rate:,.0f}/s")
            error_share = run["errors"] / run["requests"] if run["requests"] else 1.0
            kept_up = run["rps"] >= 0.9 * rate
            within = (
                run["latency_ms"]["p99"] <= sweep.p99_ms and error_share <= sweep.max_error_rate and kept_up
            )
            client_limited = client_limited or run["client"]["saturated"]
            steps.append({"rate": round(rate, 1), "within_bound": within, **run})
            return within

        rate = sweep.start
        for _ in range(sweep.steps):
            if step(rate):
                good = rate
                rate *= sweep.factor
            else:
                bad = rate
                break
        for _ in range(sweep.refine if bad is not None else 0):
            low = good or 0.0
            middle = (low + bad) / 2 if bad is not None else low
            if bad is None or middle - low < max(1.0, 0.02 * bad):
                break
            if step(middle):
                good = middle
            else:
                bad = middle
        best = max((s for s in steps if s["within_bound"]), key=lambda s: s["rate"], default=None)
        return {
            "target": target.name,
            "p99_bound_ms": sweep.p99_ms,
            "max_sustained_rps": best["rps"] if best else 0.0,
            "max_sustained_rate": best["rate"] if best else 0.0,
            "first_rate_beyond": bad if bad is not None else None,
            "reached_step_limit": bad is None,
            "client_limited": client_limited,
            "steps": steps,
        }

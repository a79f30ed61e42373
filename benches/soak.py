#!/usr/bin/env python3
"""Soak and scaling checks for issue 5: RSS over a long steady run, and req/s with 1 vs 2 workers.

    python benches/soak.py soak --minutes 10 --rate 1000     # RSS every 30 s at a steady open-loop rate
    python benches/soak.py scale --duration 10 --rounds 2    # 1 vs 2 workers, nothing pinned

Soak: the gateway (1 worker, the benches/run.py config with a `limit` on every endpoint) is
pinned to CPU 0, the mock and `gateway bench` to CPU 1. A mix of chat, streamed chat and
embeddings runs at a fixed rate; the RSS of the gateway's process tree is sampled throughout.
Growth is last sample minus the first sample taken after the first minute (warm-up: pools,
caches and allocator arenas fill first).

Scale: no pinning, so two workers can use both cores; closed-loop chat at 64 connections with
wrk (2 threads), medians over rounds, each worker count started fresh.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # benches/ is a folder of scripts, not a package
    HOST,
    MESSAGES,
    Process,
    free_port,
    gateway_config,
    pinned,
    post,
    rss_mb,
    tree_pids,
)


def start_mock(workdir: Path, cpu: str | None) -> tuple[Process, str]:
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "mock-upstream", "--port", str(port), "--embed-dim", "1536"]
    mock = Process(pinned(cpu, argv), workdir / "mock.log")
    upstream = f"http://{HOST}:{port}/v1"
    wait_ok(f"http://{HOST}:{port}/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    return mock, upstream


def start_gateway(workdir: Path, upstream: str, workers: int, cpu: str | None) -> tuple[Process, str]:
    config = workdir / f"gateway-{workers}.yaml"
    config.write_text(gateway_config(upstream))
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "start", "--config-path", str(config), "--port", str(port)]
    gateway = Process(pinned(cpu, [*argv, "--workers", str(workers)]), workdir / f"gateway-{workers}.log")
    url = f"http://{HOST}:{port}"
    wait_ok(f"{url}/v1/chat/completions", {"model": "bench-chat", "messages": MESSAGES})
    return gateway, url


def wait_ok(url: str, body: dict[str, object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if post(url, body)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")


def bench(url: str, extra: list[str], cpu: str | None, seconds: float) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "gateway", "bench", url, "-d", str(seconds), "--warmup", "0", *extra]
    return subprocess.Popen(pinned(cpu, argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def soak(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="gw-soak-"))
    mock, upstream = start_mock(workdir, "1")
    gateway, url = start_gateway(workdir, upstream, 1, "0")
    seconds = args.minutes * 60
    share = args.rate / 3
    loads = [
        bench(f"{url}/v1", ["--model", "bench-chat", "--rate", f"{share:g}"], "1", seconds),
        bench(f"{url}/v1", ["--model", "bench-chat", "--stream", "--rate", f"{share:g}"], "1", seconds),
        bench(
            f"{url}/v1",
            ["--kind", "embeddings", "--model", "bench-embeddings", "--rate", f"{share:g}"],
            "1",
            seconds,
        ),
    ]
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    try:
        while any(load.poll() is None for load in loads):
            samples.append((time.monotonic() - started, rss_mb(tree_pids(gateway.pid))))
            print(f"{samples[-1][0]:6.0f} s  RSS {samples[-1][1]:.1f} MB", flush=True)
            time.sleep(args.every)
    finally:
        outputs = [load.communicate()[0].decode() for load in loads]
        gateway.stop()
        mock.stop()
    after_warmup = [rss for at, rss in samples if at >= 60] or [rss for _, rss in samples]
    print(
        f"soak {args.minutes} min at {args.rate:g} req/s (chat, stream, embeddings): "
        f"RSS first {samples[0][1]:.1f} MB, after 1 min {after_warmup[0]:.1f} MB, "
        f"last {samples[-1][1]:.1f} MB, peak {max(r for _, r in samples):.1f} MB, "
        f"growth after warm-up {after_warmup[-1] - after_warmup[0]:+.1f} MB"
    )
    for output in outputs:
        print(output.strip().splitlines()[-1] if output.strip() else "(no bench output)")
    return 0


def closed_loop(url: str, seconds: float) -> float:
    body = Path(tempfile.mkstemp(suffix=".json")[1])
    body.write_text(json.dumps({"model": "bench-chat", "messages": MESSAGES, "max_tokens": 128}))
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    lua.write_text(WRK_POST)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c64",
            f"-d{seconds:g}s",
            "-s",
            str(lua),
            f"{url}/v1/chat/completions",
            "--",
            str(body),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


WRK_POST = """
init = function(args)
  local f = assert(io.open(args[1], "rb")); wrk.body = f:read("*a"); f:close()
  wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"
end
"""


def scale(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "scale needs wrk (apt-get install wrk): one Python load process cannot fill two cores"
        )
    workdir = Path(tempfile.mkdtemp(prefix="gw-scale-"))
    mock, upstream = start_mock(workdir, None)
    results: dict[int, list[float]] = {1: [], 2: []}
    try:
        for _ in range(args.rounds):
            for workers in (1, 2):
                gateway, url = start_gateway(workdir, upstream, workers, None)
                closed_loop(url, 2)  # warm-up
                results[workers].append(closed_loop(url, args.duration))
                gateway.stop()
    finally:
        mock.stop()
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(
        f"chat c64, nothing pinned, medians of {args.rounds}: 1 worker {one:.0f} req/s, 2 workers {two:.0f} req/s"
    )
    print(f"scaling 2 workers / 1 worker: {two / one:.2f}x (rounds: {results})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    soak_cmd = commands.add_parser("soak")
    soak_cmd.add_argument("--minutes", type=float, default=10)
    soak_cmd.add_argument(
        "--rate", type=float, default=1000, help="total req/s, split over chat, stream, embeddings"
    )
    soak_cmd.add_argument("--every", type=float, default=30, help="seconds between RSS samples")
    scale_cmd = commands.add_parser("scale")
    scale_cmd.add_argument("--duration", type=float, default=10)
    scale_cmd.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    return soak(args) if args.command == "soak" else scale(args)


if __name__ == "__main__":
    threading.excepthook = lambda exc: None  # a sampler thread dying must not mask the report
    sys.exit(main())

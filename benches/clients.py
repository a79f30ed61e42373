#!/usr/bin/env python3
"""Upstream HTTP clients side by side: POST round-trips to `gateway mock-upstream` at a fixed
concurrency, one client library at a time, in one run.

    python benches/clients.py                                  # 3 rounds x 5 s per client and body
    python benches/clients.py --rounds 5 --seconds 10 --clients ours,aiohttp,httpx
    pip install --target /tmp/benchlibs pyreqwest curl-cffi aiosonic   # the optional ones
    PYTHONPATH=/tmp/benchlibs python benches/clients.py

Layout (2 cores): the mock is pinned to CPU 1, each client process to CPU 0 with everything it
runs (a Rust or C library's threads included), so a client's req/s is what one core of it
sustains and its CPU per request is measured (user + system of the whole process). Every
client runs on uvloop (the loop the gateway's workers use), keeps connections alive, reads
the whole body and checks the status. Each round runs the clients in turn, in an order reversed
every other round; the report gives medians over rounds. Results go to
benches/results/<date>-clients.md (and .json).

Clients: ours (gateway.proxy.upstream.UpstreamClient.post, the gateway's own path, error
mapping included), aiohttp (ClientSession), httpx (AsyncClient), httpx2 (when installed),
pyreqwest (Rust reqwest), curl_cffi (libcurl AsyncSession), aiosonic (pure Python), each only
when importable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ["ours", "aiohttp", "httpx", "httpx2", "pyreqwest", "curl_cffi", "aiosonic"]
BODIES = {
    "chat": (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Explain in two sentences what an API gateway does."}],
            "max_tokens": 128,
        },
    ),
    "embed": ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "The quick brown fox."}),
}
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}

Post = Callable[[], Awaitable[int]]


# -- one client, in its own process ------------------------------------------------------------


async def make_client(
    name: str, url: str, body: bytes, concurrency: int
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    if name == "ours":
        from gateway.proxy.upstream import UpstreamClient

        ours = UpstreamClient(30)

        async def post_ours() -> int:
            return (await ours.post(url, HEADERS, body, "bench")).status

        return post_ours, ours.close
    if name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False)

        async def post_aiohttp() -> int:
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
                return response.status

        return post_aiohttp, session.close
    if name in ("httpx", "httpx2"):
        module: Any = __import__(name)
        limits = module.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
        client = module.AsyncClient(limits=limits, trust_env=False)

        async def post_httpx() -> int:
            response = await client.post(url, content=body, headers=HEADERS)
            return int(response.status_code)

        return post_httpx, client.aclose
    if name == "pyreqwest":
        from pyreqwest.client import ClientBuilder

        reqwest = ClientBuilder().max_connections(concurrency * 2).build()

        async def post_reqwest() -> int:
            response = await reqwest.post(url).headers(HEADERS).body_bytes(body).build().send()
            await response.bytes()
            return int(response.status)

        return post_reqwest, reqwest.close
    if name == "curl_cffi":
        from curl_cffi.requests import AsyncSession

        curl = AsyncSession(max_clients=concurrency)

        async def post_curl() -> int:
            response = await curl.post(url, data=body, headers=HEADERS)
            return int(response.status_code)

        return post_curl, curl.close
    if name == "aiosonic":
        import aiosonic
        from aiosonic.pools import PoolConfig

        pools = {":default": PoolConfig(size=concurrency * 2)}
        sonic = aiosonic.HTTPClient(aiosonic.TCPConnector(pool_configs=pools))

        async def post_sonic() -> int:
            response = await sonic.post(url, data=body, headers=HEADERS)
            await response.content()
            return int(response.status_code)

        async def close_sonic() -> None:
            await sonic.connector.cleanup()

        return post_sonic, close_sonic
    raise SystemExit(f"unknown client {name}")


async def measure(
    name: str, url: str, body: bytes, concurrency: int, warmup: float, seconds: float
) -> dict[str, Any]:
    post, close = await make_client(name, url, body, concurrency)
    latencies: list[float] = []
    errors = 0
    phase = {"record": False, "stop": False}

    async def worker() -> None:
        nonlocal errors
        while not phase["stop"]:
            started = time.perf_counter()
            try:
                status = await post()
            except Exception:
                status = 0
            if phase["record"]:
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    phase["record"] = True
    await asyncio.sleep(seconds)
    phase["record"] = False
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    phase["stop"] = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    done = len(latencies)
    latencies.sort()
    return {
        "client": name,
        "requests": done,
        "errors": errors,
        "rps": done / wall,
        "cpu_us_per_request": cpu / max(done, 1) * 1e6,
        "cpu_percent": cpu / wall * 100,
        "p50_ms": latencies[done // 2] * 1000 if done else 0.0,
        "p99_ms": latencies[int(done * 0.99)] * 1000 if done else 0.0,
    }


def run_one(args: argparse.Namespace) -> None:
    import uvloop

    path, payload = BODIES[args.body]
    body = json.dumps(payload).encode()
    url = f"http://127.0.0.1:{args.port}{path}"
    result = uvloop.run(measure(args.client, url, body, args.concurrency, args.warmup, args.seconds))
    print("RESULT " + json.dumps(result), flush=True)


# -- the whole comparison ----------------------------------------------------------------------


def available(name: str) -> bool:
    module = {"ours": "gateway", "curl_cffi": "curl_cffi"}.get(name, name)
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return (
        ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else argv
    )


def start_mock() -> tuple[subprocess.Popen[str], int]:
    argv = pinned(1, [sys.executable, "-m", "gateway", "mock-upstream", "--port", "0"])
    mock = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert mock.stdout is not None
    line = mock.stdout.readline()
    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
    return mock, port


def compare(args: argparse.Namespace) -> None:
    clients = [c for c in args.clients.split(",") if available(c)]
    skipped = [c for c in args.clients.split(",") if c not in clients]
    mock, port = start_mock()
    rounds: list[dict[str, Any]] = []
    try:
        for index in range(args.rounds):
            order = clients if index % 2 == 0 else clients[::-1]
            for body in args.bodies.split(","):
                for client in order:
                    argv = [sys.executable, __file__, "one", client, "--port", str(port), "--body", body]
                    argv += ["--concurrency", str(args.concurrency), "--seconds", str(args.seconds)]
                    argv += ["--warmup", str(args.warmup)]
                    done = subprocess.run(pinned(0, argv), capture_output=True, text=True, timeout=120)
                    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
                    if not line:
                        print(f"{client} {body}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                        continue
                    result = {**json.loads(line[0][7:]), "round": index, "body": body}
                    rounds.append(result)
                    print(
                        f"round {index} {body:5} {client:10} {result['rps']:8.0f} req/s "
                        f"{result['cpu_us_per_request']:6.0f} us CPU/req ({result['cpu_percent']:.0f}% of a core)"
                        f"  p99 {result['p99_ms']:.2f} ms "
                        f"errors {result['errors']}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        mock.terminate()
        mock.wait(10)
    report(args, clients, skipped, rounds)


def report(
    args: argparse.Namespace, clients: list[str], skipped: list[str], rounds: list[dict[str, Any]]
) -> None:
    def median(client: str, body: str, key: str) -> float:
        values = [r[key] for r in rounds if r["client"] == client and r["body"] == body]
        return statistics.median(values) if values else float("nan")

    bodies = args.bodies.split(",")
    lines = [
        f"# upstream HTTP clients, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- command: `python benches/clients.py --rounds {args.rounds} --seconds {args.seconds} "
        f"--concurrency {args.concurrency}`",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, uvloop; client "
        "process pinned to CPU 0 (all its threads), `gateway mock-upstream` to CPU 1",
        f"- POST round-trips at concurrency {args.concurrency}, keep-alive, whole body read; "
        f"{args.seconds:g} s per client and body after {args.warmup:g} s warm-up; medians of "
        f"{args.rounds} rounds (order reversed every other round)",
        "- chat: ~200-byte JSON request, ~600-byte JSON answer; embed: 1536 floats (~20 KB answer)",
    ]
    if skipped:
        lines.append(f"- not installed, skipped: {', '.join(skipped)}")
    lines.append(
        "- `CPU µs/req` is the client's own cost (user + system, all threads); `req/s per core` = "
        "1e6 / that, what one core of the client would sustain; `req/s` is what it reached, capped "
        "by the mock (one core) for the fastest clients, which then idle part of their core"
    )
    header = (
        "| client | "
        + " | ".join(
            f"{b} req/s | {b} CPU µs/req | {b} req/s per core | {b} p99 ms | {b} per core ÷ ours"
            for b in bodies
        )
        + " |"
    )
    lines += ["", header, "|---" * (1 + 5 * len(bodies)) + "|"]
    for client in clients:
        cells = []
        for body in bodies:
            cpu = median(client, body, "cpu_us_per_request")
            ours = median("ours", body, "cpu_us_per_request") if "ours" in clients else float("nan")
            cells += [
                f"{median(client, body, 'rps'):,.0f}",
                f"{cpu:.0f}",
                f"{1e6 / cpu:,.0f}",
                f"{median(client, body, 'p99_ms'):.2f}",
                f"{ours / cpu:.2f}",
            ]
        lines.append(f"| {client} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        out = ROOT / "benches" / "results" / f"{dt.date.today():%Y-%m-%d}-clients"
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(json.dumps(rounds, indent=1) + "\n")
        print(f"wrote {out}.md and .json", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("one")
    one.add_argument("client")
    one.add_argument("--port", type=int, required=True)
    one.add_argument("--body", default="chat", choices=sorted(BODIES))
    one.add_argument("--concurrency", type=int, default=32)
    one.add_argument("--seconds", type=float, default=5)
    one.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--bodies", default="chat,embed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args()
    if args.command == "one":
        run_one(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()

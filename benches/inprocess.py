#!/usr/bin/env python3
"""The gateway's own CPU per request, without the HTTP server: the worker's app driven through
ASGI in process (no Granian, no client socket) against the real mock upstream over TCP.

    python benches/inprocess.py                        # every feature on, chat, 20,000 requests
    python benches/inprocess.py --features none        # MLflow's open gateway
    python benches/inprocess.py --features key,limit --kind embeddings --profile

It starts `gateway mock-upstream` on CPU 1 and runs itself on CPU 0, then sends `--requests`
requests at `--concurrency` in one uvloop event loop, exactly as Granian would call the app
(scope, receive, send), and reports the CPU time this process used per request (user + system,
the mock excluded) as the median of `--rounds` rounds. CPU per request is steadier on a shared
machine than req/s, and it isolates what the gateway's code costs from what the server costs.
`--profile` adds a cProfile breakdown of one more round, grouped by request phase.

Features (`--features`, comma list, or `all` / `none`): key (a consumer key required and
presented), limit (a call limit on the endpoint), usage (usage records to SQLite, through the
usage writer process as `gateway start` runs it: its CPU is counted too), log (the access log,
to a file); metrics are always on, as they are in a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

HOST = "127.0.0.1"
FEATURES = ("key", "limit", "usage", "log")
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": (
        "/v1/chat/completions",
        {
            "model": "bench-chat",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Explain in two sentences what an API gateway for LLMs does."},
            ],
            "temperature": 0.2,
            "max_tokens": 128,
        },
    ),
    "embeddings": ("/v1/embeddings", {"model": "bench-embeddings", "input": "The quick brown fox."}),
    "stream": (
        "/v1/chat/completions",
        {
            "model": "bench-chat",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 128,
            "stream": True,
        },
    ),
}
# request phases, for the profile: the first of these functions on a call stack names its phase
PHASES = (
    ("authenticate", "pipeline/authenticate.py"),
    ("read + validate", "pipeline/read.py"),
    ("admit (limits, budgets)", "pipeline/admit.py"),
    ("invoke: provider request", "providers/"),
    ("invoke: upstream client", "proxy/"),
    ("relay to the client", "pipeline/relay.py"),
    ("record (usage, metrics, log)", "pipeline/record.py"),
)


def config_text(upstream: str, features: set[str], database: str) -> str:
    lines: list[str] = []
    if "key" in features:
        lines += ["auth:", "  admin_key: bench-admin-key-0123456789abcdef", "  require_keys: true"]
    if "key" in features or "usage" in features:
        lines += [f"database_url: sqlite:///{database}"]
    lines += ["endpoints:"]
    for name, kind, model in (
        ("bench-chat", "chat", "gpt-4o-mini"),
        ("bench-embeddings", "embeddings", "text-embedding-3-small"),
    ):
        lines += [
            f"  - name: {name}",
            f"    endpoint_type: llm/v1/{kind}",
            "    model:",
            "      provider: openai",
            f"      name: {model}",
            "      config:",
            "        openai_api_key: sk-mock",
            f"        openai_api_base: {upstream}",
        ]
        if "limit" in features:
            lines += ["    limit:", "      calls: 1000000000", "      renewal_period: minute"]
    return "\n".join(lines) + "\n"


class Driver:
    """Calls the app as an ASGI server does, and counts the answers."""

    def __init__(self, app: Any, path: str, body: dict[str, Any], key: str | None) -> None:
        self.app = app
        self.raw = orjson.dumps(body)
        headers = [
            (b"host", b"gateway"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.raw)).encode()),
        ]
        if key is not None:
            headers.append((b"authorization", b"Bearer " + key.encode()))
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": (HOST, 50000),
            "server": (HOST, 5000),
        }
        self.statuses: dict[int, int] = {}

    async def one(self) -> None:
        sent = False
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.raw, "more_body": False}
            await never  # the client stays: cancelled with the request's watcher
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                self.statuses[status] = self.statuses.get(status, 0) + 1

        await self.app(dict(self.scope), receive, send)

    async def run(self, requests: int, concurrency: int) -> None:
        left = requests

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await self.one()

        await asyncio.gather(*(lane() for _ in range(concurrency)))


async def lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
    await asyncio.wait_for(started.wait(), 30)
    return task, inbox


async def measure(args: argparse.Namespace, features: set[str], upstream: str, workdir: Path) -> list[float]:
    from gateway.config import parse_config
    from gateway.control.table import EndpointTable
    from gateway.proxy.upstream import UpstreamClient
    from gateway.server.app import GatewayApp
    from gateway.store.migrate import prepare_database

    database = workdir / "gateway.db"
    text = config_text(upstream, features, str(database))
    config = parse_config(text)
    key = None
    if config.database_url is not None:
        prepare_database(config.database_url)
    if "key" in features:
        from gateway.store.keys import KeyStore

        assert config.database_url is not None
        _, key = KeyStore(config.database_url).create(name="bench")
    client = UpstreamClient(60.0)
    table = EndpointTable(config, client)
    app = GatewayApp(table, client)
    task, inbox = await lifespan(app)
    path, body = BODIES[args.kind]
    driver = Driver(app, path, body, key)
    await driver.run(min(args.requests, 2000), args.concurrency)  # warm-up: connections, caches
    rounds: list[float] = []
    for _ in range(args.rounds):
        before = time.process_time() + children_cpu()
        await driver.run(args.requests, args.concurrency)
        await asyncio.sleep(1.2)  # the usage records of the round written (writer process included)
        rounds.append((time.process_time() + children_cpu() - before) / args.requests * 1e6)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await driver.run(args.requests, args.concurrency)
        profiler.disable()
        report_profile(profiler, args.requests)
    bad = {status: n for status, n in driver.statuses.items() if status != 200}
    if bad:
        print(f"warning: answers other than 200: {bad}", file=sys.stderr)
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 30)
    return rounds


def children_cpu() -> float:
    """CPU seconds of this process's children but the mock (the usage writer process)."""
    total = 0
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                stat = Path(f"/proc/{child}/stat").read_text()
            except OSError:
                continue
            if "mock-upstream" in Path(f"/proc/{child}/cmdline").read_text():
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def report_profile(profiler: cProfile.Profile, requests: int) -> None:
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(timing[2] for timing in entries.values())  # every function's own time
    phase_time = dict.fromkeys([name for name, _ in PHASES] + ["server side (ASGI, event loop, other)"], 0.0)
    for (filename, _, _), (_, _, own, _, _) in entries.items():
        for name, marker in PHASES:
            if marker in filename.replace(os.sep, "/"):
                phase_time[name] += own
                break
        else:
            phase_time["server side (ASGI, event loop, other)"] += own
    print(f"\nprofile (cProfile's own time per function, grouped by module; {requests} requests):")
    for name, seconds in phase_time.items():
        print(f"  {name:40s} {seconds / requests * 1e6:7.1f} us  {seconds / total * 100:5.1f}%")
    print("\ntop functions by own time:")
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:25]
    for (filename, line, function), (_, calls, own, _, _) in ranked:
        where = "/".join(Path(filename).parts[-2:])
        per = own / requests * 1e6
        print(f"  {per:6.2f} us  {calls / requests:5.1f} calls/req  {function} ({where}:{line})")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", default="all", help="comma list of key,limit,usage,log; or all, none")
    parser.add_argument("--kind", choices=sorted(BODIES), default="chat")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.features == "all":
        features = set(FEATURES)
    elif args.features == "none":
        features = set()
    else:
        features = {name.strip() for name in args.features.split(",") if name.strip()}
        unknown = features - set(FEATURES)
        if unknown:
            parser.error(f"unknown features: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="gateway-inprocess-") as directory:
        workdir = Path(directory)
        os.environ["GATEWAY_STATE_DIR"] = directory
        os.environ["GATEWAY_RELOAD_INTERVAL_SECONDS"] = "0"
        if "log" in features:
            os.environ["GATEWAY_ACCESS_LOG"] = str(workdir / "access.log")
        with mock_upstream() as upstream, writer_process(features, workdir):
            with_cpu0()
            import uvloop

            rounds = uvloop.run(measure(args, features, upstream, workdir))
    label = ",".join(sorted(features)) or "none"
    print(
        f"\n{args.kind}, features {label}: {statistics.median(rounds):.1f} us of CPU per request "
        f"(median of {len(rounds)} rounds: {', '.join(f'{r:.1f}' for r in rounds)})"
    )
    return 0


@contextlib.contextmanager
def mock_upstream() -> Iterator[str]:
    """`gateway mock-upstream` on CPU 1, for the run."""
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "gateway", "mock-upstream", "--port", str(port)]
    process = subprocess.Popen(
        ["taskset", "-c", "1", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"http://{HOST}:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def writer_process(features: set[str], workdir: Path) -> Iterator[None]:
    """With usage records: the host's usage writer process, as `gateway start` runs it."""
    if "usage" not in features:
        yield
        return
    from gateway.store.migrate import prepare_database

    try:
        from gateway.usage.writer_process import usage_writer_process
    except ImportError:  # an earlier version (a baseline): its workers write from a thread
        yield
        return

    url = f"sqlite:///{workdir / 'gateway.db'}"
    prepare_database(url)
    with usage_writer_process(url):
        yield


def with_cpu0() -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})


if __name__ == "__main__":
    sys.exit(main())

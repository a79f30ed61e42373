#!/usr/bin/env python3
"""Reproduce issue 5's comparison table: our gateway against the mock upstream (and, when they
are there, the bare passthroughs and the peer gateways), side by side in one run.

    python benches/run.py                       # 2 rounds, 10 s per scenario, ~6 min
    python benches/run.py --rounds 1 --duration 3 --warmup 1 --tag quick
    python benches/run.py --targets direct,ours,pt-aiohttp-orjson

Layout on a 2-core machine (the issue's method): the target is pinned to CPU 0 with taskset;
the mock upstream (`gateway mock-upstream`) and the load generator share CPU 1. The load
generator is wrk (-t1, apt package `wrk`) when installed, else `gateway bench`; the paced
stream and the 1-connection scenario always use `gateway bench` (it measures time to first
event). Every target is started fresh per round, checked, warmed up, measured, and stopped by
its own process group. The report gives medians over rounds; ratios and differences against
`direct` are taken within each round, then the median. Writes benches/results/<date>.md/.json.

Targets: direct (the mock itself), ours (`gateway start`, 1 worker, OpenAI provider, full
validation, a `limit` on every endpoint), pt-aiohttp-raw / pt-aiohttp-orjson (the bare Granian
passthroughs of ../shared/bench/passthrough_app.py, when that file exists), mlflow / litellm
(when installed under $BENCH_PEERS_DIR, default /opt/peers, as ../shared/bench/install_peers.sh
sets them up).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = ROOT.parent / "shared" / "bench"
PEERS = Path(os.environ.get("BENCH_PEERS_DIR", "/opt/peers"))
HOST = "127.0.0.1"
TOKEN = "sk-bench-7f3a9c2e5b8d4f61a0c9e2b7d5f8a3c1"  # LiteLLM needs a master key; others ignore it
CHUNKS = 20
EMBED_DIM = 1536
UPSTREAM_MODEL = {
    "bench-chat": "gpt-4o-mini",
    "bench-chat-delay-5ms": "mock-delay-5ms",  # the mock paces streams for a model named so
    "bench-completions": "gpt-3.5-turbo-instruct",
    "bench-embeddings": "text-embedding-3-small",
}
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": "Explain in two sentences what an API gateway for large language models does.",
    },
]
BODIES = {
    "chat": {"model": "bench-chat", "messages": MESSAGES, "temperature": 0.2, "max_tokens": 128},
    "stream": {
        "model": "bench-chat",
        "messages": MESSAGES,
        "temperature": 0.2,
        "max_tokens": 128,
        "stream": True,
    },
    "paced": {"model": "bench-chat-delay-5ms", "messages": MESSAGES, "max_tokens": 128, "stream": True},
    "embed": {"model": "bench-embeddings", "input": "The quick brown fox jumps over the lazy dog."},
}
# name -> (loader, path, body, connections); loader "load" = wrk when installed else gateway bench
SCENARIOS = {
    "chat-c1": ("bench", "/v1/chat/completions", "chat", 1),
    "chat-c32": ("load", "/v1/chat/completions", "chat", 32),
    "chat-c128": ("load", "/v1/chat/completions", "chat", 128),
    "embed-c32": ("load", "/v1/embeddings", "embed", 32),
    "embed-c128": ("load", "/v1/embeddings", "embed", 128),
    "stream-c32": ("load", "/v1/chat/completions", "stream", 32),
    "paced-stream-c16": ("bench", "/v1/chat/completions", "paced", 16),
}
WRK_LUA = r"""
local token = "sk-bench"
init = function(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  if args[2] then token = args[2] end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def post(url: str, body: dict[str, Any], timeout: float = 5.0, token: str = TOKEN) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, repr(exc).encode()


# -- processes and measurements from /proc


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024.0


def cpu_jiffies(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total


def machine_busy_jiffies() -> int:
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return values[0] + values[1] + values[2]  # user + nice + system, all CPUs


def kernel_threads_jiffies() -> int:
    """CPU of kernel threads (children of kthreadd, such as ksoftirqd doing our own loopback
    traffic), which is the benchmark's, not outside noise."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
            except (OSError, ValueError):
                continue
            if fields[1] == "2" or entry == "2":
                total += int(fields[11]) + int(fields[12])
    return total


def own_cpu_seconds() -> float:
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


class Process:
    """A process we started, in its own process group, stopped by that group's id."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115 (open for the process's life)
        self.popen = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        pids = tree_pids(self.pid)
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)
        for pid in pids[1:]:  # a descendant that left the group: end it by its id
            if Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.log.close()


class RssSampler(threading.Thread):
    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak = root, 0.0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max(self.peak, rss_mb(tree_pids(self.root)))
            self.halt.wait(0.5)

    def __enter__(self) -> RssSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join()


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if cpu is not None else argv


# -- targets


FEATURES = ("key", "limit", "usage", "log")  # what `ours-*` targets turn on (metrics: always)
ADMIN_KEY = "bench-admin-key-0123456789abcdef"


def gateway_config(upstream: str, features: frozenset[str] = frozenset({"limit"}), database: str = "") -> str:
    """The endpoints, and what `features` asks for: key (a consumer key required), limit (a
    call limit per endpoint), usage (usage records in SQLite). `log` is a flag, not config."""
    lines = []
    if "key" in features:
        lines += ["auth:", f"  admin_key: {ADMIN_KEY}", "  require_keys: true"]
    if "key" in features or "usage" in features:
        lines += [f"database_url: sqlite:///{database}"]
    lines += ["endpoints:"]
    kinds = {"bench-embeddings": "embeddings", "bench-completions": "completions"}
    for name, model in UPSTREAM_MODEL.items():
        lines += [
            f"  - name: {name}",
            f"    endpoint_type: llm/v1/{kinds.get(name, 'chat')}",
            "    model:",
            "      provider: openai",
            f"      name: {model}",
            "      config:",
            "        openai_api_key: sk-mock",
            f"        openai_api_base: {upstream}",
        ]
        if "limit" in features:  # high enough never to refuse: what it costs is measured
            lines += ["    limit:", "      calls: 1000000000", "      renewal_period: minute"]
    return "\n".join(lines) + "\n"


def consumer_key(config: Path, env: dict[str, str]) -> str:
    """A consumer key created in the config's database, as an operator would (`gateway keys`),
    by the target's own version of the gateway (`env`: a baseline's PYTHONPATH)."""
    argv = [
        sys.executable,
        "-m",
        "gateway",
        "keys",
        "create",
        "--config-path",
        str(config),
        "--name",
        "bench",
    ]
    run = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=True, env={**os.environ, **env}
    )
    return str(json.loads(run.stdout[: run.stdout.rindex("}") + 1])["key"])


def litellm_config(upstream: str) -> str:
    prefixes = {"bench-completions": "text-completion-openai/"}
    lines = ["model_list:"]
    for name, model in UPSTREAM_MODEL.items():
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: {prefixes.get(name, 'openai/')}{model}",
            f"      api_base: {upstream}",
            "      api_key: sk-mock",
        ]
    lines += ["litellm_settings:", "  drop_params: true", "general_settings:", f"  master_key: {TOKEN}"]
    return "\n".join(lines) + "\n"


def known_targets(baselines: list[str] | None = None) -> dict[str, dict[str, Any]]:
    gateway = [sys.executable, "-m", "gateway", "start", "--config-path", "{config}"]
    gateway += ["--host", HOST, "--port", "{port}", "--workers", "1", "--log-level", "warning"]
    quiet = {"GATEWAY_RELOAD_INTERVAL_SECONDS": "0"}
    targets: dict[str, dict[str, Any]] = {
        "direct": {"argv": None},
        # issue 5's target: full validation and a limit on every endpoint
        "ours": {"argv": gateway, "config": "gateway", "features": frozenset({"limit"}), "env": quiet},
    }
    # every feature on (issue 14's target), none, and each alone: what each one costs
    variants = {"ours-full": frozenset(FEATURES), "ours-bare": frozenset()}
    variants.update({f"ours+{feature}": frozenset({feature}) for feature in FEATURES})
    for name, features in variants.items():
        argv = [*gateway, "--access-log", "{access_log}"] if "log" in features else gateway
        targets[name] = {"argv": argv, "config": "gateway", "features": features, "env": quiet}
    # an earlier version of the gateway (a `git worktree` of an older commit, its python/ dir):
    # NAME-full with every feature it has, NAME-bare with none, for before/after in one run
    for baseline in baselines or []:
        name, _, directory = baseline.partition("=")
        env = {**quiet, "PYTHONPATH": str(Path(directory).resolve())}
        cli = (Path(directory) / "gateway" / "cli.py").read_text()
        has = {"key", "limit"} | ({"usage", "log"} if "access-log" in cli else set())
        full = [*gateway, "--access-log", "{access_log}"] if "log" in has else gateway
        targets[f"{name}-full"] = {"argv": full, "config": "gateway", "features": frozenset(has), "env": env}
        targets[f"{name}-bare"] = {"argv": gateway, "config": "gateway", "features": frozenset(), "env": env}
    passthrough = SHARED_BENCH / "passthrough_app.py"
    if passthrough.exists() and shutil.which("granian"):
        granian = [shutil.which("granian") or "granian", "--interface", "asgi", "--loop", "uvloop"]
        granian += ["--host", HOST, "--port", "{port}", "--workers", "1", "--no-access-log"]
        granian += ["--log-level", "warning", "--working-dir", str(SHARED_BENCH), "passthrough_app:app"]
        for mode in ("raw", "orjson"):
            env = {"PT_UPSTREAM": "{upstream}", "PT_MODE": mode, "PT_CLIENT": "aiohttp"}
            env["PT_MODEL_MAP"] = json.dumps(UPSTREAM_MODEL)
            targets[f"pt-aiohttp-{mode}"] = {"argv": granian, "env": env}
    mlflow = PEERS / "mlflow" / "bin" / "mlflow"
    if mlflow.exists():
        targets["mlflow"] = {
            "argv": [str(mlflow), "gateway", "start", "--config-path", "{config}", "--host", HOST]
            + ["--port", "{port}", "--workers", "1"],
            "config": "gateway",
            "env": {"MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true"},
        }
    litellm = PEERS / "litellm" / "bin" / "litellm"
    if litellm.exists():
        targets["litellm"] = {
            "argv": [
                str(litellm),
                "--config",
                "{config}",
                "--host",
                HOST,
                "--port",
                "{port}",
                "--num_workers",
                "1",
            ],
            "config": "litellm",
            "env": {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"},
        }
    return targets


# -- load generators


def run_wrk(
    url: str,
    body_file: Path,
    connections: int,
    duration: float,
    lua: Path,
    cpu: str | None,
    token: str = TOKEN,
) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
    ]
    argv += [url, "--", str(body_file), token]
    out = subprocess.run(pinned(cpu, argv), capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[8:])
            seconds = data["duration_us"] / 1e6
            errors = sum(
                data[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")
            )
            return {
                "rps": data["requests"] / seconds,
                "requests": data["requests"],
                "errors": errors,
                "p50_ms": data["p50_us"] / 1000,
                "p90_ms": data["p90_us"] / 1000,
                "p99_ms": data["p99_us"] / 1000,
                "max_ms": data["max_us"] / 1000,
                "loader": "wrk",
            }
    raise RuntimeError(f"wrk gave no summary: {out.stdout[-300:]} {out.stderr[-300:]}")


def run_bench(
    url: str,
    body: dict[str, Any],
    connections: int,
    duration: float,
    cpu: str | None,
    stream: bool,
    token: str = TOKEN,
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "gateway", "bench", url, "--body", json.dumps(body), "-c", str(connections)]
    argv += [
        "-d",
        str(duration),
        "--warmup",
        "0",
        "--no-progress",
        "--json",
        "--api-key",
        token,
        "--timeout",
        "10",
    ]
    if stream:
        argv.append("--stream")
    out = subprocess.run(pinned(cpu, argv), capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise RuntimeError(f"gateway bench failed: {out.stderr[-400:]}")
    run = json.loads(out.stdout)["runs"][0]
    lat = run["latency_ms"]
    result = {
        "rps": run["rps"],
        "requests": run["requests"],
        "errors": run["errors"],
        "p50_ms": lat["p50"],
        "p90_ms": lat["p90"],
        "p99_ms": lat["p99"],
        "max_ms": lat["max"],
        "loader": "gateway bench",
        "client_saturated": run["client"]["saturated"],
    }
    if run["stream"]:
        result["ttft_p50_ms"] = run["stream"]["ttft_ms"]["p50"]
        result["ttft_p99_ms"] = run["stream"]["ttft_ms"]["p99"]
        result["without_done"] = run["stream"]["without_done"]
    return result


# -- one target, one round


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        two_cores = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
        self.target_cpu, self.load_cpu = ("0", "1") if two_cores else (None, None)
        self.use_wrk = args.loader == "wrk" or (args.loader == "auto" and shutil.which("wrk") is not None)
        self.lua = workdir / "post.lua"
        self.lua.write_text(WRK_LUA)
        self.body_files = {}
        for key, body in BODIES.items():
            path = workdir / f"body-{key}.json"
            path.write_text(json.dumps(body))
            self.body_files[key] = path
        self.mock: Process | None = None
        self.mock_port = 0
        self.token = TOKEN  # the bearer token of the target being measured

    def start_mock(self) -> None:
        self.mock_port = free_port()
        argv = [sys.executable, "-m", "gateway", "mock-upstream", "--port", str(self.mock_port)]
        argv += ["--chunks", str(CHUNKS), "--embed-dim", str(EMBED_DIM)]
        self.mock = Process(pinned(self.load_cpu, argv), self.workdir / "mock.log")
        if not self.wait_ready(f"http://{HOST}:{self.mock_port}", self.mock, 20):
            raise SystemExit("the mock upstream did not start")

    def wait_ready(self, base: str, proc: Process | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                return False
            status, _ = post(f"{base}/v1/chat/completions", BODIES["chat"], timeout=3, token=self.token)
            if status == 200:
                return True
            time.sleep(0.3)
        return False

    def load(self, base: str, scenario: str, duration: float) -> dict[str, Any]:
        loader, path, body, connections = SCENARIOS[scenario]
        if loader == "load" and self.use_wrk:
            return run_wrk(
                base + path, self.body_files[body], connections, duration, self.lua, self.load_cpu, self.token
            )
        return run_bench(
            base + path,
            BODIES[body],
            connections,
            duration,
            self.load_cpu,
            body in ("stream", "paced"),
            self.token,
        )

    def measure(self, name: str, spec: dict[str, Any], round_index: int) -> dict[str, Any]:
        upstream = f"http://{HOST}:{self.mock_port}/v1"
        self.token = TOKEN
        info: dict[str, Any] = {"status": "ok", "scenarios": {}}
        proc = None
        port = self.mock_port
        if spec["argv"] is not None:
            port = free_port()
            config = self.workdir / f"{name}-{round_index + 1}.yaml"
            features = spec.get("features", frozenset({"limit"}))
            database = str(self.workdir / f"{name}-{round_index + 1}.db")
            config.write_text(
                litellm_config(upstream)
                if spec.get("config") == "litellm"
                else gateway_config(upstream, features, database)
            )
            fill = {"{config}": str(config), "{port}": str(port), "{upstream}": upstream}
            fill["{access_log}"] = str(self.workdir / f"{name}-{round_index + 1}-access.log")
            argv = [fill.get(part, part) for part in spec["argv"]]
            env = {key: fill.get(value, value) for key, value in spec.get("env", {}).items()}
            if spec.get("config") == "gateway":
                if features & {"key", "usage"}:
                    # versions before `database_url` in the config read only the environment
                    env["GATEWAY_DATABASE_URL"] = f"sqlite:///{database}"
                self.token = consumer_key(config, env) if "key" in features else TOKEN
            log(f"round {round_index + 1}: start {name}")
            started = time.monotonic()
            proc = Process(pinned(self.target_cpu, argv), self.workdir / f"{name}-{round_index + 1}.log", env)
            if not self.wait_ready(f"http://{HOST}:{port}", proc, self.args.start_timeout):
                proc.stop()
                info["status"] = f"failed to start (log {self.workdir}/{name}-{round_index + 1}.log)"
                log(f"{name}: {info['status']}")
                return info
            info["startup_s"] = round(time.monotonic() - started, 2)
            info["idle_rss_mb"] = round(rss_mb(tree_pids(proc.pid)), 1)
        root = proc.pid if proc is not None else (self.mock.pid if self.mock else 0)
        base = f"http://{HOST}:{port}"
        try:
            if self.args.warmup > 0:
                self.load(base, "chat-c32", self.args.warmup)
            for scenario in self.args.scenarios:
                info["scenarios"][scenario] = self.scenario(base, scenario, root, proc is not None)
        finally:
            if proc is not None:
                proc.stop()
        return info

    def scenario(self, base: str, scenario: str, root: int, separate_target: bool) -> dict[str, Any]:
        hz = os.sysconf("SC_CLK_TCK")
        mock_pid = self.mock.pid if self.mock else 0
        target_cpu0 = cpu_jiffies(tree_pids(root)) if separate_target else 0
        mock_cpu0 = cpu_jiffies([mock_pid])
        busy0, own0, wall0 = machine_busy_jiffies(), own_cpu_seconds(), time.monotonic()
        kernel0 = kernel_threads_jiffies()
        with RssSampler(root) as sampler:
            try:
                result = self.load(base, scenario, self.args.duration)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                result = {"failed": str(exc)[:300]}
        wall = time.monotonic() - wall0
        target_s = (cpu_jiffies(tree_pids(root)) - target_cpu0) / hz if separate_target else 0.0
        mock_s = (cpu_jiffies([mock_pid]) - mock_cpu0) / hz
        busy_s = (machine_busy_jiffies() - busy0) / hz
        own_s = own_cpu_seconds() - own0 + (kernel_threads_jiffies() - kernel0) / hz
        result["rss_peak_mb"] = round(sampler.peak, 1)
        result["target_cpu_pct"] = round(100 * (target_s if separate_target else mock_s) / wall, 1)
        # CPU used meanwhile by processes outside the benchmark: on a shared machine, a row
        # measured while something else ran is flagged instead of trusted
        result["noise_cpu_pct"] = round(max(0.0, 100 * (busy_s - target_s - mock_s - own_s) / wall), 1)
        log(
            f"  {scenario:17s} rps={result.get('rps', 0):9.1f} p99={result.get('p99_ms', 0):8.2f} ms "
            f"err={result.get('errors', '?')} rss={sampler.peak:.0f} MB noise={result['noise_cpu_pct']}%"
        )
        return result


# -- report


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(
    runs: list[dict[str, dict[str, Any]]], targets: list[str], scenarios: list[str]
) -> dict[str, Any]:
    """runs[round][target] -> medians per target and scenario, with per-round ratios to direct."""
    rows: dict[str, Any] = {}
    for name in targets:
        row: dict[str, Any] = {"scenarios": {}}
        for scenario in scenarios:
            per_round = [r.get(name, {}).get("scenarios", {}).get(scenario) for r in runs]
            bases = [r.get("direct", {}).get("scenarios", {}).get(scenario) for r in runs]
            pairs = [
                (m, b) for m, b in zip(per_round, bases, strict=True) if m and b and "rps" in m and "rps" in b
            ]
            good = [m for m in per_round if m and "rps" in m]
            if not good:
                continue
            cell = {
                key: median([m.get(key) for m in good]) for key in ("rps", "p50_ms", "p99_ms", "ttft_p50_ms")
            }
            cell["rss_peak_mb"] = max(m["rss_peak_mb"] for m in good)
            cell["noise_cpu_pct"] = max(m["noise_cpu_pct"] for m in good)
            cell["errors"] = sum(m["errors"] for m in good)
            cell["requests"] = sum(m["requests"] for m in good)
            cell["x_direct"] = median([m["rps"] / b["rps"] for m, b in pairs if b["rps"]])
            cell["added_p50_ms"] = median([m["p50_ms"] - b["p50_ms"] for m, b in pairs])
            cell["added_p99_ms"] = median([m["p99_ms"] - b["p99_ms"] for m, b in pairs])
            if "ttft_p50_ms" in good[0]:
                cell["added_ttft_p50_ms"] = median([m["ttft_p50_ms"] - b["ttft_p50_ms"] for m, b in pairs])
            row["scenarios"][scenario] = cell
        rss = [cell["rss_peak_mb"] for cell in row["scenarios"].values()]
        row["rss_peak_mb"] = max(rss) if rss else None
        rows[name] = row
    return rows


def fmt(value: float | None, digits: int = 0, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"
    return text


def markdown(summary: dict[str, Any], scenarios: list[str], meta: dict[str, Any]) -> str:
    throughput = [s for s in scenarios if s not in ("chat-c1", "paced-stream-c16")]
    header = ["target (1 worker)", *(f"{s} req/s" for s in throughput)]
    header += ["first event +", "+p50 / +p99 at c1", "RSS MB", "noise %"]
    lines = [
        f"# gateway benchmark, {meta['date']}",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}",
        f"- {meta['rounds']} rounds, {meta['duration']} s per scenario after {meta['warmup']} s warm-up; "
        f"load: {meta['loader']}; pinning: {meta['pinning']}",
        "- medians over rounds; `first event +` = time to the first SSE event of a paced stream (20 chunks, "
        "5 ms apart, 16 connections) minus direct's, per round; `+p50 / +p99 at c1` = latency added over "
        "direct at 1 connection, ms; RSS = peak over the run of the target's process tree; `noise %` = the "
        "worst scenario's CPU use by processes outside the benchmark (% of one core): distrust rows where it "
        "is high",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, row in summary.items():
        cells = row["scenarios"]
        values = [fmt(cells.get(s, {}).get("rps")) for s in throughput]
        paced = cells.get("paced-stream-c16", {})
        first = "0" if name == "direct" else fmt(paced.get("added_ttft_p50_ms"), 2, signed=True)
        c1 = cells.get("chat-c1", {})
        added = (
            "0"
            if name == "direct"
            else f"{fmt(c1.get('added_p50_ms'), 2, True)} / {fmt(c1.get('added_p99_ms'), 2, True)}"
        )
        noise = max((cell.get("noise_cpu_pct") or 0 for cell in cells.values()), default=0)
        lines.append(
            "| " + " | ".join([name, *values, first, added, fmt(row["rss_peak_mb"]), fmt(noise)]) + " |"
        )
    lines += ["", "## p99 latency (ms) and ratio to direct", ""]
    header = ["target", *(f"{s} p99 / ×direct" for s in throughput)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in summary.items():
        cells = row["scenarios"]
        values = [
            f"{fmt(cells.get(s, {}).get('p99_ms'), 2)} / {fmt(cells.get(s, {}).get('x_direct'), 3)}"
            for s in throughput
        ]
        lines.append("| " + " | ".join([name, *values]) + " |")
    if "ours" in summary:
        lines += ["", "## ours against each other target (req/s ratio of medians)", ""]
        header = ["ours ÷", *throughput]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        ours = summary["ours"]["scenarios"]
        for name, row in summary.items():
            if name == "ours":
                continue
            ratios = []
            for s in throughput:
                mine, theirs = ours.get(s, {}).get("rps"), row["scenarios"].get(s, {}).get("rps")
                ratios.append(fmt(mine / theirs, 3) if mine and theirs else "-")
            lines.append("| " + " | ".join([name, *ratios]) + " |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", help="comma list (default: every available one)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of chat load before measuring")
    parser.add_argument("--loader", choices=["auto", "wrk", "bench"], default="auto")
    parser.add_argument("--start-timeout", type=float, default=90.0)
    parser.add_argument("--out-dir", default=str(ROOT / "benches" / "results"))
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    parser.add_argument(
        "--baseline",
        action="append",
        metavar="NAME=DIR",
        help="also measure the gateway whose package is in DIR (e.g. a git worktree's python/): targets NAME-full and NAME-bare",
    )
    args = parser.parse_args()
    available = known_targets(args.baseline)
    names = args.targets.split(",") if args.targets else list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"unknown or unavailable targets {unknown}; available: {', '.join(available)}")
    if "direct" not in names:
        names.insert(0, "direct")
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    if any(s not in SCENARIOS for s in args.scenarios):
        parser.error(f"scenarios: {', '.join(SCENARIOS)}")
    if args.loader == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk), use --loader bench")
    workdir = Path(tempfile.mkdtemp(prefix="gw-benches-"))
    bench = Bench(args, workdir)
    started = dt.datetime.now(dt.UTC)
    log(f"targets {names}; scenarios {args.scenarios}; {args.rounds} rounds; logs in {workdir}")
    runs: list[dict[str, Any]] = []
    bench.start_mock()
    try:
        for round_index in range(args.rounds):
            order = names if round_index % 2 == 0 else [names[0], *reversed(names[1:])]
            runs.append({name: bench.measure(name, available[name], round_index) for name in order})
    finally:
        if bench.mock is not None:
            bench.mock.stop()
    summary = summarize(runs, names, args.scenarios)
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", "benches/run.py", *sys.argv[1:]]),
        "machine": machine(),
        "rounds": args.rounds,
        "duration": args.duration,
        "warmup": args.warmup,
        "loader": "wrk -t1 (gateway bench for chat-c1 and the paced stream)"
        if bench.use_wrk
        else "gateway bench",
        "pinning": "target on CPU 0; mock and load generator on CPU 1"
        if bench.target_cpu
        else "none (fewer than 2 CPUs)",
    }
    text = markdown(summary, args.scenarios, meta)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d") + (f"-{args.tag}" if args.tag else "")
    (out_dir / f"{stem}.md").write_text(text)
    payload = {"meta": meta, "targets": names, "summary": summary, "runs": runs}
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    print(text)
    log(f"wrote {out_dir / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

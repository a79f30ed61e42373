"""`gateway bench` flags, and turning them into a run (argv parsing only here)."""

from __future__ import annotations

import argparse
import os
import resource
import sys
from typing import Any

from gateway.bench import plot
from gateway.bench.prompts import SIZES, builtin_bodies
from gateway.bench.report import render_csv, render_json, render_table
from gateway.bench.runner import Runner, Settings, Sweep
from gateway.bench.targets import TargetError, load_bodies, parse_header, requests_for, resolve

EXAMPLES = """examples:
  gateway bench http://127.0.0.1:5000/v1 --model chat -c 32 -d 10
  gateway bench http://127.0.0.1:5000/v1 --model chat --stream --rate 200 -d 20
  gateway bench http://127.0.0.1:18000/v1 --compare http://127.0.0.1:5000/v1 --model chat --rounds 3
  gateway bench http://127.0.0.1:5000 --endpoint chat --sweep --sweep-p99-ms 50
  gateway bench http://127.0.0.1:5000/v1 --kind embeddings --model embeddings --json out.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Load-test any OpenAI-compatible or MLflow-style URL: closed loop (N connections) or open "
        "loop (a fixed arrival rate, latency counted from the scheduled send), side-by-side "
        "comparison of targets, and rate sweeps."
    )
    parser.epilog = EXAMPLES
    what = parser.add_argument_group("target and requests")
    what.add_argument("url", nargs="?", help="base URL (http://host:port, .../v1) or a full route URL")
    what.add_argument(
        "--compare", nargs="+", default=[], metavar="URL", help="more targets, measured in alternating rounds"
    )
    what.add_argument("--name", action="append", default=[], help="label per target, in order")
    what.add_argument(
        "--kind", choices=["chat", "completions", "embeddings"], help="default: from the URL, else chat"
    )
    what.add_argument(
        "--endpoint", help="MLflow-style route: a base URL (not .../v1) gets /endpoints/NAME/invocations"
    )
    what.add_argument(
        "--model",
        action="append",
        default=[],
        help="model (or gateway endpoint) name; once, or once per target",
    )
    what.add_argument(
        "--stream", action="store_true", help="stream (chat, completions) and measure TTFT, gaps, tokens/s"
    )
    what.add_argument("--include-usage", action="store_true", help="ask for stream_options.include_usage")
    what.add_argument(
        "--prompt-size", choices=list(SIZES), default="small", help="built-in prompt size (default small)"
    )
    what.add_argument(
        "--prompt-tokens", type=int, help="built-in prompt of about N tokens (overrides --prompt-size)"
    )
    what.add_argument("--variants", type=int, default=8, help="distinct built-in prompts, cycled (default 8)")
    what.add_argument(
        "--max-tokens", type=int, default=128, help="max_tokens of built-in chat/completions bodies"
    )
    what.add_argument("--body", help="the request body as JSON (used as given; --model/--stream still apply)")
    what.add_argument("--body-file", help="a JSON body, or JSON lines (one body per line, cycled)")
    what.add_argument(
        "-H", "--header", action="append", default=[], help="extra header 'Name: value' (repeatable)"
    )
    what.add_argument(
        "--api-key",
        default=os.environ.get("GATEWAY_BENCH_API_KEY"),
        help="sent as a Bearer token (env: GATEWAY_BENCH_API_KEY)",
    )
    what.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    load = parser.add_argument_group("load")
    load.add_argument(
        "-c",
        "--connections",
        type=int,
        help="closed loop: concurrency (default 32); open loop: most connections (default 512)",
    )
    load.add_argument("--rate", type=float, help="open loop: requests per second (fixed arrival rate)")
    load.add_argument("-d", "--duration", type=float, help="seconds per run (default 10)")
    load.add_argument(
        "-n", "--requests", type=int, help="requests per run instead of a duration (capped by --max-duration)"
    )
    load.add_argument(
        "--max-duration", type=float, default=300.0, help="hard cap per run with -n (default 300 s)"
    )
    load.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of unmeasured load before each run (default 1)"
    )
    load.add_argument("--rounds", type=int, help="runs per target (default 1; 3 with --compare)")
    load.add_argument(
        "--timeout", type=float, default=30.0, help="per-request timeout in seconds (default 30)"
    )
    load.add_argument(
        "--processes", type=int, default=1, help="load processes (when one core cannot drive the target)"
    )
    load.add_argument("--cpus", help="pin the load processes to these CPUs, e.g. 1 or 0,1")
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument(
        "--sweep", action="store_true", help="raise the open-loop rate until p99 passes --sweep-p99-ms"
    )
    sweep.add_argument("--sweep-p99-ms", type=float, default=100.0, help="the p99 bound (default 100 ms)")
    sweep.add_argument("--sweep-start", type=float, help="first rate (default --rate, else 100/s)")
    sweep.add_argument(
        "--sweep-factor", type=float, default=1.5, help="rate multiplier per step (default 1.5)"
    )
    sweep.add_argument("--sweep-steps", type=int, default=12, help="most rising steps (default 12)")
    sweep.add_argument(
        "--sweep-refine", type=int, default=2, help="bisection steps after the bound is passed (default 2)"
    )
    sweep.add_argument(
        "--sweep-max-errors",
        type=float,
        default=0.01,
        help="largest error share within the bound (default 0.01)",
    )
    out = parser.add_argument_group("output")
    progress = out.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="progress bar even when stderr is not a terminal",
    )
    progress.add_argument("--no-progress", action="store_false", dest="progress", help="no progress bar")
    out.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="JSON report to PATH, or stdout without one"
    )
    out.add_argument(
        "--csv", nargs="?", const="-", metavar="PATH", help="CSV report to PATH, or stdout without one"
    )
    out.add_argument(
        "--plot", metavar="PNG", help="latency and throughput chart (needs matplotlib: gateway[bench])"
    )
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace, urls: list[str]) -> str | None:
    if not urls:
        return "give a target URL (and --compare URL... for more)"
    if args.compare and len(urls) < 2:
        return "--compare needs two or more targets"
    if args.name and len(args.name) != len(urls):
        return f"--name given {len(args.name)} times for {len(urls)} targets"
    if len(args.model) not in (0, 1, len(urls)):
        return (
            f"--model given {len(args.model)} times for {len(urls)} targets: give it once, or once per target"
        )
    if args.rate is not None and args.rate <= 0:
        return "--rate must be positive"
    if args.sweep and args.compare:
        return "--sweep measures one target at a time: drop --compare or run it per target"
    if args.plot and not plot.available():
        return plot.MISSING
    for name, value in (
        ("--connections", args.connections),
        ("--processes", args.processes),
        ("--requests", args.requests),
    ):
        if value is not None and value < 1:
            return f"{name} must be at least 1"
    if args.body and args.body_file:
        return "give --body or --body-file, not both"
    return None


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed + 64 and (hard == resource.RLIM_INFINITY or soft < hard):
        new = needed + 64 if hard == resource.RLIM_INFINITY else min(hard, needed + 64)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def build_settings(args: argparse.Namespace) -> Settings:
    urls = ([args.url] if args.url else []) + list(args.compare)
    problem = _check(args, urls)
    if problem:
        raise TargetError(problem)
    models = args.model * len(urls) if len(args.model) == 1 else args.model or [None] * len(urls)
    names = args.name or [None] * len(urls)
    targets = [resolve(url, args.kind, args.endpoint, models[i], names[i]) for i, url in enumerate(urls)]
    if len({t.name for t in targets}) < len(targets):
        targets = [
            resolve(url, args.kind, args.endpoint, models[i], f"{i + 1}:{t.name}")
            for i, (url, t) in enumerate(zip(urls, targets, strict=True))
        ]
    headers = [parse_header(h) for h in args.header]
    if args.api_key:
        headers.append(("Authorization", f"Bearer {args.api_key}"))
    given = load_bodies(args.body, args.body_file)
    tokens = args.prompt_tokens or SIZES[args.prompt_size]
    max_tokens = args.max_tokens if args.max_tokens > 0 else None
    requests = []
    for target in targets:
        bodies: list[dict[str, Any]] = given or builtin_bodies(
            target.kind, tokens, max(1, args.variants), max_tokens
        )
        requests.append(
            requests_for(target, bodies, headers, args.stream, args.include_usage, bool(args.model))
        )
    open_loop = args.rate is not None or args.sweep
    connections = args.connections or (512 if open_loop else 32)
    duration = args.duration if args.duration is not None else (args.max_duration if args.requests else 10.0)
    sweep = None
    if args.sweep:
        sweep = Sweep(
            p99_ms=args.sweep_p99_ms,
            start=args.sweep_start or args.rate or 100.0,
            factor=max(1.05, args.sweep_factor),
            steps=max(1, args.sweep_steps),
            refine=max(0, args.sweep_refine),
            max_error_rate=args.sweep_max_errors,
        )
    return Settings(
        targets=targets,
        requests=requests,
        connections=connections,
        rate=args.rate,
        duration=duration,
        max_requests=args.requests,
        warmup=max(0.0, args.warmup),
        rounds=args.rounds or (3 if len(targets) > 1 else 1),
        timeout=args.timeout,
        processes=args.processes,
        insecure=args.insecure,
        sweep=sweep,
        stream=args.stream,
    )


def _write(text: str, path: str) -> None:
    if path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


def run(args: argparse.Namespace) -> int:
    from gateway.bench.progress import ProgressBar

    try:
        settings = build_settings(args)
    except (TargetError, OSError) as exc:
        return _fail(str(exc))
    if args.cpus:
        try:
            os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
        except (ValueError, OSError) as exc:
            return _fail(f"--cpus {args.cpus}: {exc}")
    _raise_file_limit(settings.connections)
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    report = Runner(settings, ProgressBar(show_progress)).run()
    text = render_table(report)
    machine_on_stdout = args.json == "-" or args.csv == "-"
    print(text, file=sys.stderr if machine_on_stdout else sys.stdout, flush=True)
    if args.json:
        _write(render_json(report), args.json)
    if args.csv:
        _write(render_csv(report), args.csv)
    if args.plot:
        plot.write_plot(report, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0

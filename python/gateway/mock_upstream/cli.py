"""`gateway mock-upstream` flags (argv parsing only; the server is in server.py)."""

from __future__ import annotations

import argparse

from gateway.mock_upstream.server import MockOptions, serve


def latency_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    try:
        bounds = (float(low), float(high)) if sep else (float(low), float(low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B in milliseconds, got {text!r}") from None
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise argparse.ArgumentTypeError(f"expected 0 <= A <= B, got {text!r}")
    return bounds


DESCRIPTION = """A fast mock provider for benchmarks, tests and experiments (127.0.0.1 by default).

OpenAI:    POST /v1/chat/completions, /v1/completions (JSON, or SSE with "stream": true and a
           usage chunk when stream_options.include_usage is true), /v1/embeddings (one
           embedding per input, base64 honoured), GET /v1/models, GET /health
Anthropic: POST /v1/messages (JSON, or the Messages API event stream)
Any credentials are accepted. Replies are pre-rendered; keep-alive and pipelining work."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = DESCRIPTION
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=18000, help="port; 0 picks a free one (default: 18000)")
    latency = parser.add_mutually_exclusive_group()
    latency.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay before each reply")
    latency.add_argument(
        "--latency-ms-range", type=latency_range, metavar="A-B", help="delay drawn uniformly from A..B ms"
    )
    parser.add_argument(
        "--chunks", type=int, default=20, help="SSE chunks per stream (OpenAI: role + words + finish)"
    )
    parser.add_argument(
        "--chunk-delay-ms",
        type=float,
        default=0.0,
        help="delay before each stream chunk; a model name containing delay-<N>ms overrides it per request",
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of API requests answered with an error"
    )
    parser.add_argument(
        "--error-status", type=int, default=500, help="status of injected errors (default 500)"
    )
    parser.add_argument("--embed-dim", type=int, default=1536, help="embedding dimensions (default 1536)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.chunks < 2:
        raise SystemExit("Error: --chunks must be at least 2")
    if not 0.0 <= args.error_rate <= 1.0:
        raise SystemExit("Error: --error-rate must be between 0 and 1")
    if not 100 <= args.error_status <= 599:
        raise SystemExit("Error: --error-status must be an HTTP status")
    if args.latency_ms < 0 or args.chunk_delay_ms < 0 or args.embed_dim < 1:
        raise SystemExit("Error: latencies must be >= 0 and --embed-dim >= 1")
    latency = args.latency_ms_range or (args.latency_ms, args.latency_ms)
    options = MockOptions(
        host=args.host,
        port=args.port,
        latency_ms=latency,
        chunks=args.chunks,
        chunk_delay_ms=args.chunk_delay_ms,
        error_rate=args.error_rate,
        error_status=args.error_status,
        embed_dim=args.embed_dim,
    )
    serve(options)
    return 0

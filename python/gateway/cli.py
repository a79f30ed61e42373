"""`gateway start` (MLflow's `mlflow gateway start` flags and defaults) and `gateway validate`."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from typing import Literal

from gateway.auth.exposure import warn_if_exposed
from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError
from gateway.server.tls import TlsError, TlsFiles, tls_files
from gateway.settings import SettingsError, reload_settings, settings

logger = logging.getLogger("gateway")


def _config_path(value: str | None) -> str | None:
    path = value or os.environ.get("MLFLOW_GATEWAY_CONFIG") or os.environ.get("MLFLOW_DEPLOYMENTS_CONFIG")
    return os.path.abspath(os.path.expanduser(path)) if path else None


def _load(path: str) -> GatewayConfig | None:
    """Load the config exactly as a worker will (secrets resolved); None (reason printed) if it
    cannot be served."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"Error: invalid gateway configuration {path}: {exc}", file=sys.stderr)
        return None


def _settings_ok() -> bool:
    """Read the environment's settings once, flags applied; False (reason printed) if one is
    not a valid value."""
    try:
        current = reload_settings()
    except SettingsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return False
    if not math.isfinite(current.drain_seconds):
        print("Error: GATEWAY_DRAIN_SECONDS must be a finite number of seconds", file=sys.stderr)
        return False
    return True


def start(args: argparse.Namespace) -> int:
    path = _config_path(args.config_path)
    if path is None:
        print(
            "Error: Missing option '--config-path' (or set MLFLOW_GATEWAY_CONFIG).",
            file=sys.stderr,
        )
        return 2
    # flags become the environment the workers inherit
    if args.max_request_bytes is not None:
        os.environ["GATEWAY_MAX_REQUEST_BYTES"] = str(args.max_request_bytes)
    if args.drain_seconds is not None:
        os.environ["GATEWAY_DRAIN_SECONDS"] = repr(args.drain_seconds)
    if args.access_log is not None:
        log = args.access_log
        if log not in ("", "-"):  # a file path made absolute, whatever directory a worker is in
            log = os.path.abspath(os.path.expanduser(log))
        os.environ["GATEWAY_ACCESS_LOG"] = log
    if not _settings_ok() or not _access_log_writable(settings().access_log):
        return 2
    tls = _tls(args)
    if tls is False:
        return 2
    config = _load(path)
    if config is None:
        return 2
    for warning in config.warnings:
        logger.warning("%s", warning)
    warn_if_exposed(args.host, args.port, config.auth)
    if config.database_url is not None and not _database_ready(config.database_url):
        return 2
    from gateway.server.run import serve

    serve(
        path,
        args.host,
        args.port,
        args.workers,
        args.log_level,
        config_text=config.text,
        tls=tls,
        database_url=config.database_url,
    )
    return 0


def _access_log_writable(path: str) -> bool:
    """The access log file can be appended to (created 0600 if new); False (reason printed)."""
    if not path or path == "-":
        return True
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        os.close(os.open(os.path.expanduser(path), flags, 0o600))
    except OSError as exc:
        print(f"Error: cannot write the access log {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _database_ready(url: str) -> bool:
    """Migrate the key database before any worker starts (workers assume its schema), in a
    short-lived process (gateway/store/prepare.py): Alembic and SQLAlchemy never load in the
    supervisor, nor in the workers it forks. The URL goes on stdin, never on a command line.
    Its log lines and error line reach this process's stderr."""
    import subprocess

    reason = "Error: the key database cannot be used:"
    try:
        done = subprocess.run(
            [sys.executable, "-P", "-m", "gateway.store.prepare"], input=url.encode(), check=False
        )
    except OSError as exc:
        print(f"{reason} the migration process did not start ({exc.strerror or exc})", file=sys.stderr)
        return False
    if done.returncode not in (0, 2):  # it crashed: its traceback is above
        print(f"{reason} the migration process exited with status {done.returncode}", file=sys.stderr)
    return done.returncode == 0


def _tls(args: argparse.Namespace) -> TlsFiles | None | Literal[False]:
    """The checked TLS files from the flags, else GATEWAY_SSL_*; None: plain HTTP; False
    (reason printed) if they cannot serve TLS."""
    env = settings()
    try:
        return tls_files(
            args.ssl_certfile or env.ssl_certfile,
            args.ssl_keyfile or env.ssl_keyfile,
            args.ssl_keyfile_password or env.ssl_keyfile_password,
        )
    except TlsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return False


def validate(args: argparse.Namespace) -> int:
    path = _config_path(args.config_path)
    if path is None:
        print("Error: give a config path", file=sys.stderr)
        return 2
    if not _settings_ok():
        return 2
    config = _load(path)
    if config is None:
        return 2
    for warning in config.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    if args.strict and config.warnings:
        print(
            f"Error: {path}: {len(config.warnings)} endpoint(s) cannot be served (--strict)", file=sys.stderr
        )
        return 1
    print(f"{path}: OK ({len(config.endpoints)} endpoints, {len(config.routes)} routes)")
    return 0


def keys(args: argparse.Namespace) -> int:
    """`gateway keys create | list | show | revoke` (gateway/store/commands.py)."""
    from gateway.store.commands import run

    return run(args)


def usage(args: argparse.Namespace) -> int:
    """`gateway usage`: the usage API's table from the database (gateway/usage/query.py)."""
    from gateway.usage.query import run

    return run(args)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds >= 0")
    return seconds


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """`command` is the subcommand about to run: the bench and mock-upstream flags (and their
    imports) load only for theirs, so `gateway start` stays lean."""
    parser = argparse.ArgumentParser(prog="gateway", description="High-throughput LLM API gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    start_cmd = commands.add_parser("start", help="Start the gateway service")
    start_cmd.add_argument("--config-path", help="gateway config file (env: MLFLOW_GATEWAY_CONFIG)")
    start_cmd.add_argument(
        "--host", default="127.0.0.1", help="The network address to listen on (default: 127.0.0.1)."
    )
    start_cmd.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    start_cmd.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    start_cmd.add_argument(
        "--max-request-bytes",
        type=int,
        default=None,
        help="largest accepted request body; larger gets 413 (env: GATEWAY_MAX_REQUEST_BYTES, default 32 MiB)",
    )
    start_cmd.add_argument(
        "--drain-seconds",
        type=_seconds,
        default=None,
        metavar="N",
        help="how long a stopping worker may finish in-flight requests and streams before it is "
        "killed (env: GATEWAY_DRAIN_SECONDS, default 30)",
    )
    start_cmd.add_argument(
        "--ssl-certfile",
        metavar="PATH",
        help="serve HTTPS: PEM certificate chain, leaf first (env: GATEWAY_SSL_CERTFILE; needs --ssl-keyfile)",
    )
    start_cmd.add_argument(
        "--ssl-keyfile", metavar="PATH", help="PEM private key of --ssl-certfile (env: GATEWAY_SSL_KEYFILE)"
    )
    start_cmd.add_argument(
        "--ssl-keyfile-password",
        metavar="PASSWORD",
        help="password of an encrypted --ssl-keyfile (env: GATEWAY_SSL_KEYFILE_PASSWORD, which keeps it "
        "out of the process list)",
    )
    start_cmd.add_argument(
        "--access-log",
        metavar="PATH",
        help="one JSON line per request to this file (appended), or - for stdout "
        "(env: GATEWAY_ACCESS_LOG; default: none)",
    )
    start_cmd.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    start_cmd.set_defaults(func=start)

    validate_cmd = commands.add_parser("validate", help="Check a config file; non-zero exit with the reason")
    validate_cmd.add_argument(
        "config_path", nargs="?", help="gateway config file (env: MLFLOW_GATEWAY_CONFIG)"
    )
    validate_cmd.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if an endpoint loads but cannot be served (its calls would answer 501)",
    )
    validate_cmd.set_defaults(func=validate)

    keys_cmd = commands.add_parser("keys", help="Create, list, show and revoke consumer keys")
    keys_cmd.set_defaults(func=keys)
    if command == "keys":  # its flags (and SQLAlchemy) load only for it
        from gateway.store.commands import add_arguments as add_keys_arguments

        add_keys_arguments(keys_cmd)

    usage_cmd = commands.add_parser(
        "usage", help="Requests, tokens and cost per key, team, endpoint, model or day"
    )
    usage_cmd.set_defaults(func=usage)
    if command == "usage":  # its flags (and SQLAlchemy) load only for it
        from gateway.usage.query import add_arguments as add_usage_arguments

        add_usage_arguments(usage_cmd)

    bench_cmd = commands.add_parser("bench", help="Load-test a gateway or provider URL")
    mock_cmd = commands.add_parser("mock-upstream", help="Serve a fast mock OpenAI / Anthropic upstream")
    if command == "bench":
        from gateway.bench.cli import add_arguments as add_bench_arguments

        add_bench_arguments(bench_cmd)
    elif command == "mock-upstream":
        from gateway.mock_upstream.cli import add_arguments as add_mock_upstream_arguments

        add_mock_upstream_arguments(mock_cmd)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words[0] if words else None).parse_args(argv)
    sys.exit(args.func(args))

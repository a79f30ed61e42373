"""`gateway keys create | list | show | revoke`: consumer keys from the command line.

The database is the one the gateway uses for the config: its `database_url`, else
GATEWAY_DATABASE_URL, else SQLite in the state directory (gateway.config.auth). Only that field
is read, so the config's provider secrets need not be set in the admin's shell. The schema is
migrated first. Errors are one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.config.auth import parse_database_url
from gateway.config.files import load_yaml, read_config_text
from gateway.config.model import AuthConfig
from gateway.errors import ConfigError, GatewayError, InvalidParameter, NotFound
from gateway.settings import SettingsError, reload_settings
from gateway.store.db import describe
from gateway.store.keys import KeyRecord, KeyStore, parse_duration, parse_timestamp, record_json
from gateway.store.migrate import migrate


class CommandError(Exception):
    """A one-line reason the command cannot run."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config-path", help="gateway config file whose database_url to use (env: MLFLOW_GATEWAY_CONFIG)"
    )
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="{create,list,show,revoke}")

    create = actions.add_parser("create", parents=[common], help="Create a key; prints its secret once")
    create.add_argument("--name", required=True, help="who or what the key is for (1-200 characters)")
    create.add_argument("--team", help="the consumer's team")
    create.add_argument(
        "--endpoint",
        dest="endpoints",
        action="extend",
        nargs="+",
        metavar="GLOB",
        help="endpoint or route names the key may call (globs, repeatable); default: every endpoint",
    )
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-at", metavar="RFC3339", help="expiry time, e.g. 2026-01-31T00:00:00Z")
    expiry.add_argument("--expires-in", metavar="DURATION", help="expiry from now: 30d, 12h, 90m, 3600")
    create.add_argument("--limit", metavar="JSON", help='e.g. \'{"calls": 100, "renewal_period": "minute"}\'')
    create.add_argument("--metadata", metavar="JSON", help="a JSON object kept with the key")
    create.set_defaults(keys_func=create_key)

    listing = actions.add_parser("list", parents=[common], help="List keys (never their secrets)")
    listing.add_argument("--team", help="only this team's keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(keys_func=list_keys)

    show = actions.add_parser("show", parents=[common], help="Show one key")
    show.add_argument("id", help="the key's id (key_...)")
    show.set_defaults(keys_func=show_key)

    revoke = actions.add_parser(
        "revoke", parents=[common], help="Revoke a key (every worker refuses it within 2 s)"
    )
    revoke.add_argument("id", help="the key's id (key_...)")
    revoke.set_defaults(keys_func=revoke_key)


def run(args: argparse.Namespace) -> int:
    try:
        code: int = args.keys_func(args)
        return code
    except (CommandError, ConfigError, SettingsError) as error:
        message = str(error)
    except GatewayError as error:
        message = error.message
    print(f"Error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return 2


def database_url(config_path: str | None) -> str:
    """The database the gateway would use for this config (see the module docstring)."""
    path = (
        config_path or os.environ.get("MLFLOW_GATEWAY_CONFIG") or os.environ.get("MLFLOW_DEPLOYMENTS_CONFIG")
    )
    if not path:
        raise CommandError("Missing option '--config-path' (or set MLFLOW_GATEWAY_CONFIG)")
    path = os.path.abspath(os.path.expanduser(path))
    try:
        raw = load_yaml(read_config_text(path))
    except ConfigError as error:
        raise CommandError(f"invalid gateway configuration {path}: {error}") from None
    except Exception:  # yaml.YAMLError, RecursionError
        raise CommandError(f"invalid gateway configuration {path}: not a valid YAML file") from None
    value = raw.get("database_url") if isinstance(raw, dict) else None
    try:
        # needs_keys: where `gateway start` would put the keys once something needs them
        url = parse_database_url(value, reload_settings(), AuthConfig(require_keys=True))
    except ConfigError as error:
        raise CommandError(f"invalid gateway configuration {path}: {error}") from None
    assert url is not None
    if value is None and not os.environ.get("GATEWAY_DATABASE_URL", "").strip():
        print(
            f"Note: {path} sets no database_url; using {describe(url)} "
            "(set database_url in the config, or GATEWAY_DATABASE_URL, to choose another)",
            file=sys.stderr,
        )
    return url


def open_store(args: argparse.Namespace) -> KeyStore:
    url = database_url(args.config_path)
    migrate(url)
    return KeyStore(url)


def _json_argument(value: str | None, flag: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as error:
        raise CommandError(f"{flag}: not valid JSON ({error})") from None


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def create_key(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    expires_at = None
    if args.expires_at is not None:
        expires_at = parse_timestamp(args.expires_at, "--expires-at")
        if expires_at is not None and expires_at <= now:
            raise InvalidParameter("--expires-at: must be in the future")
    elif args.expires_in is not None:
        expires_at = now + parse_duration(args.expires_in)
    limit = _json_argument(args.limit, "--limit")
    metadata = _json_argument(args.metadata, "--metadata")
    store = open_store(args)
    record, secret = store.create(
        args.name,
        team=args.team,
        endpoints=args.endpoints,
        expires_at=expires_at,
        limit=limit,
        metadata=metadata,
    )
    _print({**record_json(record), "key": secret})
    print("Save the key now: it is not stored and cannot be shown again.", file=sys.stderr)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    store = open_store(args)
    records: list[KeyRecord] = []
    token: str | None = None
    while True:
        page = store.list(team=args.team, include_revoked=args.all, page_size=1000, page_token=token)
        records.extend(page.keys)
        token = page.next_page_token
        if token is None:
            break
    if args.json:
        _print({"keys": [record_json(record) for record in records]})
        return 0
    rows = [("ID", "PREFIX", "NAME", "TEAM", "STATUS", "EXPIRES_AT")]
    for record in records:
        shown = record_json(record)
        rows.append(
            (
                record.id,
                record.prefix,
                record.name,
                record.team or "-",
                shown["status"],
                shown["expires_at"] or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def show_key(args: argparse.Namespace) -> int:
    record = open_store(args).get(args.id)
    if record is None:
        raise NotFound(f"Key '{args.id}' not found")
    _print(record_json(record))
    return 0


def revoke_key(args: argparse.Namespace) -> int:
    record = open_store(args).revoke(args.id)
    _print(record_json(record))
    return 0

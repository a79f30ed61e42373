"""Reading usage back: totals per key, team, endpoint, model or day over a time range, summed by
the database (GROUP BY), for `GET /admin/v1/usage` and `gateway usage`.

    group_by  key | team | endpoint | model | day      (default: endpoint)
    start     ISO-8601 date or datetime, UTC unless it has an offset  (default: 30 days ago)
    end       the same; a date alone means the end of that day        (default: now)

Rows count records with start <= started_at < end. `key` groups by the consumer's id (a JWT's
is "jwt:<subject>") and names the key; requests without one form the null group. `day` is
the UTC calendar day. Rows come ordered by day for `day`, else by cost then requests, highest
first. Every call here is synchronous: the admin API runs `usage_report` in a thread.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa

from gateway.errors import InvalidParameter
from gateway.store.db import transaction
from gateway.store.schema import NANO_USD, consumer_keys, usage_records

GROUPS = ("key", "team", "endpoint", "model", "day")
PARAMS = ("group_by", "start", "end")
DEFAULT_GROUP = "endpoint"
DEFAULT_DAYS = 30
SUMMED = ("prompt_tokens", "completion_tokens", "cached_tokens")
# parse_qs turns an unencoded "+02:00" offset into " 02:00": put the plus back
_LOST_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


@dataclass(frozen=True, slots=True)
class UsageQuery:
    group_by: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, group_by: str | None, start: str | None, end: str | None) -> UsageQuery:
        """Validated parameters (InvalidParameter naming what is allowed), defaults filled in."""
        group = DEFAULT_GROUP if group_by in (None, "") else group_by
        if group not in GROUPS:
            raise InvalidParameter(f"group_by: must be one of {', '.join(GROUPS)} (got {group_by!r})")
        now = datetime.now(UTC)
        end_at = parse_instant(end, "end", end_of_day=True) if end else now
        start_at = parse_instant(start, "start") if start else end_at - timedelta(days=DEFAULT_DAYS)
        if start_at >= end_at:
            raise InvalidParameter("start: must be before end")
        return cls(group, start_at, end_at)

    @classmethod
    def from_query_string(cls, query_string: bytes) -> UsageQuery:
        query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
        unknown = sorted(set(query) - set(PARAMS))
        if unknown:
            raise InvalidParameter(
                f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMS)}"
            )
        values = {name: query[name][-1] if name in query else None for name in PARAMS}
        return cls.parse(values["group_by"], values["start"], values["end"])


def parse_instant(value: str, field: str, end_of_day: bool = False) -> datetime:
    """An aware UTC datetime from an ISO-8601 date or datetime (naive means UTC). A date alone
    is its midnight, or the next midnight for `end_of_day` (the day is included)."""
    text = _LOST_PLUS.sub(r"\1+\2", value.strip())
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end_of_day else 0), time(), UTC)
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(
            f"{field}: not an ISO-8601 date or datetime (e.g. 2026-12-01 or 2026-12-01T12:00:00Z)"
        ) from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _group_column(group_by: str, dialect: str) -> sa.ColumnElement[Any]:
    started_at = usage_records.c.started_at
    if group_by == "day":
        if dialect == "postgresql":  # the UTC day whatever the session's time zone
            return sa.cast(sa.func.timezone("UTC", started_at), sa.Date)
        return sa.func.date(started_at)  # SQLite keeps naive UTC text: its date part
    column = {"key": "consumer", "team": "team", "endpoint": "endpoint", "model": "model"}[group_by]
    return usage_records.c[column]


def usage_report(database_url: str, query: UsageQuery) -> list[dict[str, Any]]:
    """The rows of the answer, one per group (see the module docstring)."""
    with transaction(database_url) as connection:
        group = _group_column(query.group_by, connection.dialect.name).label("grp")
        records = usage_records.c
        columns: list[sa.ColumnElement[Any]] = [
            group,
            sa.func.count().label("requests"),
            *(sa.func.coalesce(sa.func.sum(records[name]), 0).label(name) for name in SUMMED),
            sa.func.coalesce(sa.func.sum(records.cost_nano_usd), 0).label("cost"),
        ]
        source: sa.FromClause = usage_records
        grouping: list[sa.ColumnElement[Any]] = [group]
        if query.group_by == "key":  # the key's name: one join on the primary key
            columns.append(consumer_keys.c.name.label("name"))
            grouping.append(consumer_keys.c.name)
            source = usage_records.outerjoin(consumer_keys, consumer_keys.c.id == records.consumer)
        statement = (
            sa.select(*columns)
            .select_from(source)
            .where(records.started_at >= query.start, records.started_at < query.end)
            .group_by(*grouping)
        )
        if query.group_by == "day":
            statement = statement.order_by(group)
        else:
            statement = statement.order_by(sa.desc("cost"), sa.desc("requests"), group)
        rows = connection.execute(statement).mappings().all()
    return [_row(query.group_by, row) for row in rows]


def _row(group_by: str, row: Any) -> dict[str, Any]:
    value = row["grp"]
    if isinstance(value, date):
        value = value.isoformat()
    answer: dict[str, Any] = {group_by: value}
    if group_by == "key":
        answer["name"] = row["name"]
    answer["requests"] = int(row["requests"])
    for name in SUMMED:
        answer[name] = int(row[name])
    answer["cost_usd"] = round(int(row["cost"]) / NANO_USD, 9)
    return answer


def usage_answer(database_url: str, query: UsageQuery) -> dict[str, Any]:
    """The admin API's and `gateway usage --json`'s answer."""
    return {
        "group_by": query.group_by,
        "start": _rfc3339(query.start),
        "end": _rfc3339(query.end),
        "usage": usage_report(database_url, query),
    }


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summed: dict[str, Any] = {"requests": sum(row["requests"] for row in rows)}
    for name in SUMMED:
        summed[name] = sum(row[name] for row in rows)
    # integer nano-dollars again, so the total is the exact sum of the rows shown
    summed["cost_usd"] = sum(round(row["cost_usd"] * NANO_USD) for row in rows) / NANO_USD
    return summed


def format_table(group_by: str, rows: list[dict[str, Any]]) -> str:
    """Aligned columns (numbers to the right), a totals row last."""
    header = [group_by.upper(), *(["NAME"] if group_by == "key" else [])]
    header += ["REQUESTS", "PROMPT_TOKENS", "COMPLETION_TOKENS", "CACHED_TOKENS", "COST_USD"]
    labels = len(header) - 5

    def cells(label: list[str], row: dict[str, Any]) -> list[str]:
        numbers = [f"{row[name]}" for name in ("requests", *SUMMED)]
        return [*label, *numbers, f"{row['cost_usd']:.6f}"]

    lines = [header]
    for row in rows:
        label = [_shown(row[group_by])] + ([_shown(row["name"])] if group_by == "key" else [])
        lines.append(cells(label, row))
    lines.append(cells(["TOTAL", *([""] * (labels - 1))], totals(rows)))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = []
    for line in lines:
        shown = [
            cell.ljust(width) if column < labels else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(shown).rstrip())
    return "\n".join(text)


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)


# -- `gateway usage` ---------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config-path",
        "--config",
        dest="config_path",
        help="gateway config file whose database_url to read (env: MLFLOW_GATEWAY_CONFIG)",
    )
    where.add_argument(
        "--database-url",
        metavar="URL",
        help="the database itself, sqlite:///PATH or postgresql://... (env: GATEWAY_DATABASE_URL)",
    )
    parser.add_argument("--group-by", choices=GROUPS, default=DEFAULT_GROUP, help="default: endpoint")
    parser.add_argument("--start", help="ISO-8601 date or datetime, UTC (default: 30 days before --end)")
    parser.add_argument("--end", help="ISO-8601 date (included) or datetime, UTC (default: now)")
    parser.add_argument("--json", action="store_true", help="print the admin API's JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Reads the database directly, like `gateway keys`; errors are one line and exit 2."""
    from gateway.store.commands import run as run_store_command

    args.keys_func = _print_usage
    return run_store_command(args)


def _print_usage(args: argparse.Namespace) -> int:
    from gateway.store.commands import database_url
    from gateway.store.migrate import migrate

    query = UsageQuery.parse(args.group_by, args.start, args.end)
    # --database-url; else the config's, as `gateway start` would use it (its own fallback is
    # GATEWAY_DATABASE_URL); else GATEWAY_DATABASE_URL when no config is named anywhere
    config_named = any(
        os.environ.get(name) for name in ("MLFLOW_GATEWAY_CONFIG", "MLFLOW_DEPLOYMENTS_CONFIG")
    )
    from_env = os.environ.get("GATEWAY_DATABASE_URL", "").strip()
    if args.database_url:
        url = args.database_url
    elif from_env and not (args.config_path or config_named):
        url = from_env
    else:
        url = database_url(args.config_path)  # no config anywhere: says which option is missing
    migrate(url)  # a database the gateway has not started on yet has no usage table
    answer = usage_answer(url, query)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"usage from {answer['start']} to {answer['end']}, by {query.group_by}", file=sys.stderr)
    print(format_table(query.group_by, answer["usage"]))
    return 0

"""The key database's engine: one per process and URL, SQLite (one host) or PostgreSQL (several).

    sqlite:///PATH            the parent directory is created 0700 and the file 0600; WAL
                              journal, a busy timeout and foreign keys on every connection
    postgresql://... | postgres://...
                              psycopg 3 (`postgresql+psycopg://`), pool_pre_ping, a small pool

Every call is synchronous: the asyncio side runs it through `asyncio.to_thread`, never on the
event loop. A URL can hold a password: nothing here logs, echoes or raises it. `describe(url)`
is the form that may be shown (backend, user, host, database), and database errors reach
callers as `DatabaseUnavailable` with the password scrubbed from their text.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from gateway.errors import DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS = 10_000  # a writer (or a migrating process) waits this long for the lock
POOL_SIZE = 4  # PostgreSQL connections a process keeps (admin writes and the cache's poll)
POOL_OVERFLOW = 4
CONNECT_TIMEOUT_SECONDS = 5
# execution option: begin the transaction with SQLite's write lock taken (BEGIN IMMEDIATE), so
# a transaction that reads before it writes waits for the lock instead of failing SQLITE_BUSY
WRITE_LOCK = "gateway_write_lock"
if logging.getLogger("alembic").level == logging.NOTSET:
    # Alembic narrates every run at INFO (its plugins, "Context impl ..."), some of it on import;
    # set here, before migrate.py imports it: migrate() logs what changed
    logging.getLogger("alembic").setLevel(logging.WARNING)


class DatabaseUrlError(ValueError):
    """A database URL that cannot be used; the message never holds the URL."""


def parse_url(url: str) -> URL:
    """`url` as SQLAlchemy's URL with the driver this gateway uses (psycopg 3 for PostgreSQL)."""
    try:
        parsed = make_url(url.strip())
    except (exc.ArgumentError, ValueError):
        # SQLAlchemy's message quotes the whole string, password included
        raise DatabaseUrlError(
            "the database URL cannot be parsed; use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # the one driver installed
    elif backend != "sqlite":
        raise DatabaseUrlError(
            f"database backend '{backend}' is not supported; use sqlite:///PATH or postgresql://..."
        )
    return parsed


def backend_name(url: str | URL) -> str:
    """Either 'sqlite' or 'postgresql'."""
    parsed = url if isinstance(url, URL) else parse_url(url)
    return "postgresql" if parsed.get_backend_name() in ("postgres", "postgresql") else "sqlite"


def describe(url: str | URL) -> str:
    """The URL as it may be logged or shown: backend and where, no password."""
    try:
        parsed = url if isinstance(url, URL) else parse_url(url)
    except DatabaseUrlError:
        return "an unparsable database URL"
    if backend_name(parsed) == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    where = parsed.host or "localhost"
    if parsed.port:
        where += f":{parsed.port}"
    user = f"{parsed.username}@" if parsed.username else ""
    return f"postgresql {user}{where}/{parsed.database or ''}"


def password_of(url: str) -> str | None:
    try:
        password = make_url(url.strip()).password
    except Exception:
        return None
    return str(password) if password else None


def scrub(text: str, url: str) -> str:
    """`text` with the URL's password (as written, URL-encoded and decoded) replaced by ***."""
    password = password_of(url)
    if password:
        for form in {password, quote(password, safe=""), unquote(password)}:
            if form:
                text = text.replace(form, "***")
    return text


def is_memory(parsed: URL) -> bool:
    return backend_name(parsed) == "sqlite" and parsed.database in (None, "", ":memory:")


# -- engines: one per process and URL ---------------------------------------------------------
_ENGINES: dict[str, tuple[int, Engine]] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """This process's engine for `url` (created on first use, again after a fork)."""
    key = url.strip()
    with _ENGINES_LOCK:
        cached = _ENGINES.get(key)
        if cached is not None and cached[0] == os.getpid():
            return cached[1]
        if cached is not None:  # inherited through fork: never use the parent's connections
            cached[1].dispose(close=False)
        engine = _create_engine(parse_url(key))
        _ENGINES[key] = (os.getpid(), engine)
        return engine


def dispose_engines() -> None:
    """Close every engine of this process (tests, and a process about to exit)."""
    with _ENGINES_LOCK:
        for pid, engine in _ENGINES.values():
            if pid == os.getpid():
                engine.dispose()
        _ENGINES.clear()


def _create_engine(parsed: URL) -> Engine:
    if backend_name(parsed) == "postgresql":
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_recycle=1800,
            hide_parameters=True,  # key hashes are not secrets, but logs need not hold them
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": "gateway",
                # a peer that vanished (no RST) fails a query in ~30 s instead of the kernel's ~15
                # minutes, so a worker's poll thread is not stuck for that long after an outage
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                "tcp_user_timeout": 30_000,
            },
        )
    if is_memory(parsed):  # tests: one shared connection, or every connection is its own database
        engine = sa.create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}, hide_parameters=True
        )
    else:
        path = os.path.abspath(os.path.expanduser(str(parsed.database)))
        _prepare_sqlite_file(path)
        parsed = parsed.set(database=path)
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            hide_parameters=True,
        )
    _sqlite_events(engine, wal=not is_memory(parsed))
    return engine


def _prepare_sqlite_file(path: str) -> None:
    """The database's directory (0700 when created here) and the file itself (0600), so the key
    hashes and metadata are readable by this user only. SQLite gives its -wal and -shm files the
    database file's mode."""
    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise DatabaseUnavailable(f"cannot open the key database {path}: {error.strerror}") from None
    os.close(fd)


def _sqlite_events(engine: Engine, wal: bool) -> None:
    """Pragmas on every new connection, and transactions SQLAlchemy begins explicitly (pysqlite's
    own implicit BEGIN is switched off: SQLAlchemy's documented recipe), as BEGIN IMMEDIATE for
    connections that carry the WRITE_LOCK option."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")  # first: the rest may wait
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_LOCK, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# -- transactions with database errors translated ---------------------------------------------
@contextmanager
def transaction(url: str, write: bool = False) -> Iterator[Connection]:
    """A connection in a transaction, committed on success. `write`: SQLite's write lock is
    taken at BEGIN. Driver errors come out as `DatabaseUnavailable` (password scrubbed)."""
    try:
        engine = engine_for(url)
    except DatabaseUrlError as error:
        raise DatabaseUnavailable(str(error)) from None
    with translate_errors(url), engine.connect() as connection:
        if write:
            connection.execution_options(**{WRITE_LOCK: True})
        with connection.begin():
            yield connection


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.ProgrammingError, exc.InternalError) as error:
        reason = str(error.orig if error.orig is not None else error).strip().splitlines()
        text = reason[0] if reason else type(error).__name__
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            text += " (the schema is not migrated: run `gateway keys list` or start the gateway once)"
        raise DatabaseUnavailable(f"key database ({describe(url)}) error: {scrub(text, url)}") from None

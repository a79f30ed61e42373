"""A real, throwaway PostgreSQL server for tests, from Debian's `postgresql` package.

    server = PostgresServer.start()     # initdb + pg_ctl start in a temp dir, 127.0.0.1:<free port>
    url = server.create_database()      # a fresh database: postgresql://gateway_test@127.0.0.1:P/NAME
    server.stop()                       # stops the server and removes its directory

The binaries (`initdb`, `pg_ctl`) are found on PATH or under /usr/lib/postgresql/*/bin. As root
they run as the `postgres` user (`runuser -u postgres --`) on a directory it owns: the server
refuses to run as root. Authentication is `trust` for the test superuser `gateway_test`, on
127.0.0.1 only. `scripts/check.sh` installs the package when `initdb` is missing.

`require_postgres()` is what fixtures call: the server, or, when the binaries are absent, a
failure, unless GATEWAY_TESTS_ALLOW_NO_POSTGRES=1 turns that into a skip (never silently in CI).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ALLOW_MISSING = "GATEWAY_TESTS_ALLOW_NO_POSTGRES"
USER = "gateway_test"


def find_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl), or None when PostgreSQL is not installed."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):  # newest first
        initdb, pg_ctl = os.path.join(directory, "initdb"), os.path.join(directory, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.root = tempfile.mkdtemp(prefix="gw-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.port = _free_port()
        self.prefix: list[str] = []
        self._names = itertools.count(1)
        if os.geteuid() == 0:  # postgres refuses root: run it as the package's `postgres` user
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)

    @property
    def admin_url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str, password: str | None = None) -> str:
        credentials = f"{USER}:{password}" if password else USER
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            [*self.prefix, *command], capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command[:2])} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{self._log_text()}"
            )

    def _log_text(self) -> str:
        try:
            with open(self.log) as handle:
                return handle.read()[-4000:]
        except OSError:
            return ""

    @classmethod
    def start(cls) -> PostgresServer:
        binaries = find_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb / pg_ctl)")
        server = cls(*binaries)
        try:
            server._start()
        except BaseException:
            server.stop()
            raise
        return server

    def _start(self) -> None:
        self._run(
            self.initdb, "-D", self.data, "--auth=trust", f"--username={USER}", "--encoding=UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(self.pg_ctl, "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waited for it; make sure TCP answers too
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL did not listen on {self.port}:\n{self._log_text()}"
                    ) from None
                time.sleep(0.1)

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its URL (no password: trust authentication)."""
        import psycopg
        from psycopg import sql

        name = name or f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            subprocess.run(
                [*self.prefix, self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                cwd=self.root,
            )
        shutil.rmtree(self.root, ignore_errors=True)


def require_postgres() -> PostgresServer:
    """A started server. PostgreSQL missing fails the test, or skips it when
    GATEWAY_TESTS_ALLOW_NO_POSTGRES=1 (local runs without the package)."""
    if find_binaries() is None:
        if os.environ.get(ALLOW_MISSING) == "1":
            pytest.skip(f"PostgreSQL is not installed and {ALLOW_MISSING}=1")
        pytest.fail(
            "PostgreSQL is not installed (no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin): "
            f"apt-get install postgresql, or set {ALLOW_MISSING}=1 to skip these tests locally",
            pytrace=False,
        )
    return PostgresServer.start()

"""Shared fixtures: the mock OpenAI upstream (in-process thread) and real gateway processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.postgres import PostgresServer, require_postgres


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    def __init__(
        self, config_path: Path, workers: int, env: dict[str, str] | None, extra_args: list[str]
    ) -> None:
        self.config_path = config_path
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = config_path.with_suffix(f".{self.port}.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the process's life)
        environment = {**os.environ, "GATEWAY_RELOAD_INTERVAL_SECONDS": "0.2", **(env or {})}
        command = [sys.executable, "-m", "gateway", "start", "--config-path", str(config_path)]
        command += ["--port", str(self.port), "--workers", str(workers), *extra_args]
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )

    def wait_ready(self, timeout: float = 30) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                # every worker started: a worker stopped while still starting can miss the signal
                # and be killed only after the drain timeout, which slows every test's teardown
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200 and self._all_started():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not become ready:\n{self.log()}")

    def _all_started(self) -> bool:
        self._log.flush()
        return self.log_path.read_bytes().count(b"Started worker-") >= self.workers

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def launch(
    directory: Path,
    config: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> GatewayProcess:
    """Write the config into `directory` and start a gateway on it; returns once it answers."""
    path = directory / f"config-{free_port()}.yaml"
    path.write_text(config)
    return GatewayProcess(path, workers, env, extra_args or []).wait_ready()


@pytest.fixture(autouse=True)
def _settings_read_afresh() -> Iterator[None]:
    """A test that changes the environment and re-reads the settings leaves none behind."""
    yield
    from gateway.settings import settings

    settings.cache_clear()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's package), started once per test session."""
    server = require_postgres()
    yield server
    from gateway.store.db import dispose_engines

    dispose_engines()
    server.stop()


@pytest.fixture(scope="session")
def upstream() -> Iterator[OpenAIUpstream]:
    server = OpenAIUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(
        config: str, workers: int = 1, env: dict[str, str] | None = None, extra_args: list[str] | None = None
    ) -> GatewayProcess:
        gateway = launch(tmp_path, config, workers, env, extra_args)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()

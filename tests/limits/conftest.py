"""Fixtures of the rate-limit tests: a real redis-server on a free 127.0.0.1 port, and helpers
that fire many concurrent requests at a gateway."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


class RedisServer:
    """A throwaway redis-server (no persistence) that tests may kill and restart on its port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/check.sh installs it)"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as a crashed Redis does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def fire(requests: list[tuple[str, dict[str, Any]]], connections: int = 64) -> list[httpx.Response]:
    """All `(url, body)` requests at once over up to `connections` connections."""
    return asyncio.run(_fire(requests, connections))


async def _fire(requests: list[tuple[str, dict[str, Any]]], connections: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return list(await asyncio.gather(*(client.post(url, json=body) for url, body in requests)))


def aliases(base: str, name: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` chat requests for endpoint `name`, spread over its three routes."""
    routes = [
        (f"{base}/endpoints/{name}/invocations", CHAT),
        (f"{base}/gateway/{name}/invocations", CHAT),
        (f"{base}/v1/chat/completions", {**CHAT, "model": name}),
    ]
    return [routes[i % 3] for i in range(count)]


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def wait_for(predicate: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False

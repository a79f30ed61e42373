"""Slow readers of fast streams through a gateway, with the worker's RSS sampled throughout.

    python -m tests.support.slow_readers --clients 300 --seconds 8      # prints the figures

Parts, usable on their own:

* `python -m tests.support.slow_readers upstream`: an OpenAI-style upstream (raw asyncio, its own
  process) that answers every chat request with an endless SSE stream of small chunks, written
  as fast as the connection takes them (each write awaits drain, so only TCP flow control slows
  it). `FLOOD_MODEL` names the model.
* `run_clients`: N raw-socket clients that ask for a stream, then read it slowly (a small
  receive buffer, `read_bytes` every `read_every` seconds), while the RSS of a process is
  sampled; then all hang up and the RSS is sampled while the worker settles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

FLOOD_MODEL = "flood"


# -- the upstream --------------------------------------------------------------------------


def _event(index: int) -> bytes:
    chunk = {
        "id": "chatcmpl-flood",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": FLOOD_MODEL,
        "choices": [{"index": 0, "delta": {"content": f" token{index % 1000}"}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


BATCH = b"".join(_event(i) for i in range(300))  # ~45 KB of events per write
CHUNK = b"%x\r\n%s\r\n" % (len(BATCH), BATCH)
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"Cache-Control: no-cache\r\n\r\n"
)


async def _flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        writer.write(HEAD)
        while True:
            writer.write(CHUNK)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _serve_upstream(port: int) -> None:
    server = await asyncio.start_server(_flood, "127.0.0.1", port, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


class FloodUpstream:
    """The upstream in its own process (so its CPU is not the test's)."""

    def __init__(self) -> None:
        root = Path(__file__).resolve().parents[2]
        command = [sys.executable, "-m", "tests.support.slow_readers", "upstream"]
        self.proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- the clients ---------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listed:
            found += [int(child) for child in listed.read().split()]
    return found


@dataclass
class Figures:
    idle_mb: float = 0.0
    peak_mb: float = 0.0
    during_mb: list[float] = field(default_factory=list)
    after_mb: float = 0.0
    settled_mb: list[float] = field(default_factory=list)
    streams_started: int = 0
    bytes_read: int = 0

    def line(self) -> str:
        return (
            f"idle {self.idle_mb:.1f} MB, peak {self.peak_mb:.1f} MB while {self.streams_started} "
            f"slow readers read {self.bytes_read / 1e6:.1f} MB, after {self.after_mb:.1f} MB"
        )


async def _client(
    port: int, path: str, model: str, read_bytes: int, read_every: float, stats: Figures, stop: asyncio.Event
) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    body = orjson.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]})
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request)
        first = await loop.sock_recv(sock, read_bytes)
        if first.startswith(b"HTTP/1.1 200"):
            stats.streams_started += 1
        stats.bytes_read += len(first)
        while not stop.is_set():
            await asyncio.sleep(read_every)
            data = await loop.sock_recv(sock, read_bytes)
            if not data:
                break
            stats.bytes_read += len(data)
    except OSError:
        pass
    finally:
        sock.close()


async def run_clients(
    gateway_port: int,
    pid: int,
    clients: int = 300,
    seconds: float = 8.0,
    settle: float = 6.0,
    model: str = "chat",
    path: str = "/v1/chat/completions",
    read_bytes: int = 1024,
    read_every: float = 0.5,
) -> Figures:
    figures = Figures(idle_mb=rss_mb(pid))
    stop = asyncio.Event()
    tasks = []
    for index in range(clients):
        tasks.append(
            asyncio.create_task(_client(gateway_port, path, model, read_bytes, read_every, figures, stop))
        )
        if index % 50 == 49:
            await asyncio.sleep(0.05)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        figures.during_mb.append(rss_mb(pid))
        await asyncio.sleep(0.25)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        figures.settled_mb.append(rss_mb(pid))
    figures.peak_mb = max(figures.during_mb + figures.settled_mb)
    figures.after_mb = figures.settled_mb[-1]
    return figures


# -- a whole run from the command line ------------------------------------------------------


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="?", default="run", choices=["run", "upstream"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--settle", type=float, default=6.0)
    parser.add_argument("--pythonpath", default="", help="run the gateway from this python/ tree")
    args = parser.parse_args()
    if args.what == "upstream":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(_serve_upstream(args.port))
        return
    import tempfile

    from tests.conftest import launch
    from tests.integration.configs import openai_endpoint

    upstream = FloodUpstream()
    env = {"PYTHONPATH": args.pythonpath} if args.pythonpath else None
    gateway = launch(
        Path(tempfile.mkdtemp()),
        "endpoints:" + openai_endpoint("chat", "chat", FLOOD_MODEL, upstream.base),
        env=env,
    )
    try:
        (worker,) = children(gateway.proc.pid)
        figures = asyncio.run(run_clients(gateway.port, worker, args.clients, args.seconds, args.settle))
        print(figures.line())
        print("during:", " ".join(f"{mb:.0f}" for mb in figures.during_mb))
        print("after:", " ".join(f"{mb:.0f}" for mb in figures.settled_mb))
    finally:
        gateway.stop()
        upstream.stop()


if __name__ == "__main__":
    _main()

"""The access log: one JSON line per invocation request (its usage record), to a file or stdout,
and a short human-readable line at INFO when the gateway runs on a terminal.

`gateway start --access-log PATH` (or `-` for stdout; env GATEWAY_ACCESS_LOG) turns it on; it is
off by default. Lines carry no prompt or answer text unless the config says `log_payloads: true`
(then the request's messages/prompt/input and the answer's text, with configured secrets and
key-shaped tokens masked), and never a header: the record holds none.

Writing never waits on the request path: a request appends its line to a queue and a writer
thread writes whatever has gathered every LINGER_SECONDS in one `write` of whole lines. The file
is opened O_APPEND, so the workers' writes land whole and in order of writing (a regular file;
on a pipe only writes of at most PIPE_BUF bytes are atomic). A writer that cannot keep up (a
stalled stdout) drops lines beyond MAX_PENDING_LINES and says so once, rather than grow.
"""

from __future__ import annotations

import atexit
import collections
import logging
import multiprocessing.util
import os
import re
import threading
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.observe.payloads import ANSWER_KEY, answer_text, request_text
from gateway.redact import MASK

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext
    from gateway.usage import UsageRecord

logger = logging.getLogger("gateway.access")

LINGER_SECONDS = 0.05
MAX_PENDING_LINES = 100_000
STDOUT = "-"
# the gateway's own consumer keys, masked in logged payloads like the provider keys are
GATEWAY_KEY = re.compile(r"\bgw-[A-Za-z0-9_\-]{20,}")

_encode = msgspec.json.Encoder().encode


class LineWriter:
    """Whole lines to one file descriptor, written by a daemon thread in batches."""

    def __init__(self, destination: str) -> None:
        if destination == STDOUT:
            self.fd = os.dup(1)
        else:
            path = os.path.abspath(os.path.expanduser(destination))
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.pending: collections.deque[bytes] = collections.deque()
        self.dropped = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gateway-access-log", daemon=True)
        self._thread.start()
        # a worker process exits through multiprocessing (no atexit there); a plain one does not
        multiprocessing.util.Finalize(self, self.close, exitpriority=10)
        atexit.register(self.close)

    def write(self, line: bytes) -> None:
        if len(self.pending) >= MAX_PENDING_LINES:
            self.dropped += 1
            return
        self.pending.append(line)

    def _run(self) -> None:
        warned = 0
        while not self._closed:
            self._wake.wait(LINGER_SECONDS)
            self.flush()
            if self.dropped > warned:
                logger.warning("access log: %d lines dropped, the log cannot keep up", self.dropped - warned)
                warned = self.dropped

    def flush(self) -> None:
        pending = self.pending
        count = len(pending)
        if not count:
            return
        data = memoryview(b"".join([pending.popleft() for _ in range(count)]))
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError as exc:
            logger.warning("access log: write failed: %s", exc.strerror or exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.flush()
        os.close(self.fd)


class AccessLog:
    """A sink (pipeline/record.py): the record as one JSON line."""

    def __init__(self, destination: str) -> None:
        self.writer = LineWriter(destination)

    def record(self, record: UsageRecord, ctx: RequestContext) -> None:
        line = _encode(record)
        if ctx.table.config.log_payloads:
            line = line[:-1] + _payload_fields(ctx) + b"}"
        self.writer.write(line + b"\n")


def _payload_fields(ctx: RequestContext) -> bytes:
    """`,"request": ...,"answer": ...`: the texts, secrets masked."""
    redactor = ctx.table.redactor

    def mask(value: Any) -> Any:
        if isinstance(value, str):
            return GATEWAY_KEY.sub(MASK, redactor.text(value))
        if isinstance(value, dict):
            return {key: mask(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mask(item) for item in value]
        return value

    raw_answer = ctx.scope.get(ANSWER_KEY)
    fields: dict[str, Any] = {
        "request": mask(request_text(ctx.payload)),
        "answer": mask(answer_text(bytes(raw_answer)) if raw_answer else None),
    }
    return b"," + _encode(fields)[1:-1]


class TerminalLine:
    """A sink: `POST /endpoints/chat/invocations 200 chat openai gpt-4o 812ms 120+45 tok $0.0004`
    at INFO, for someone watching the gateway in a terminal."""

    def record(self, record: UsageRecord, ctx: RequestContext) -> None:
        logger.info("%s", terminal_line(record))


def terminal_line(record: UsageRecord) -> str:
    parts = [record.method, record.path, str(record.status)]
    if record.endpoint is not None:
        parts += [record.endpoint, record.provider or "-", record.model or "-"]
    parts.append(f"{record.latency_ms:.0f}ms")
    if record.total_tokens:
        estimate = "~" if record.estimated else ""
        parts.append(f"{estimate}{record.prompt_tokens}+{record.completion_tokens} tok")
    if record.cost_usd:
        parts.append("$" + f"{record.cost_usd:.6f}".rstrip("0"))  # $0.0004, $0.000004
    if record.error is not None:
        parts.append(record.error)
    return " ".join(parts)

"""relay: the answer to the client, who may go away, and a stream that may outlive the worker.

* `ClientWatch`: a request's work (the upstream call included, streamed or not) is cancelled as
  soon as its client disconnects (within WATCH_AFTER_SECONDS), so no upstream call runs on for
  nobody. That includes a client
  that half-closes after sending its request: Granian (hyper) drops such a connection without an
  answer, and tells the app about 0.3 ms later, so the upstream call is aborted then.
* `relay_stream`: the one place a stream reaches the client. Headers go out only once the
  upstream has accepted the stream; a failure after that becomes an OpenAI-style error event,
  then the stream closes.
* Draining: when the worker is told to stop, streams still running shortly before the drain
  deadline get an error event saying so, then close, instead of being cut mid-event.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.errors import GatewayError
from gateway.pipeline.context import RequestContext, StreamTally
from gateway.pipeline.record import record_failure
from gateway.providers.openai_stream import OpenAIChatStream
from gateway.proxy.openai_contract import openai_response, openai_stream_contract, wants_usage
from gateway.proxy.streaming import DONE_EVENT, encode_chunks, error_event
from gateway.schemas.responses import Response
from gateway.server.http import SSE_HEADERS, send_json
from gateway.timers import TimerGroup, timer_group
from gateway.types import Receive

logger = logging.getLogger("gateway")

SHUTDOWN_MESSAGE = (
    "The gateway is shutting down: this stream was closed at its drain deadline. Retry the request."
)
# how long before the drain deadline running streams are told and closed
DRAIN_MARGIN_SECONDS = 1.0


class ClientGone(Exception):
    """The client disconnected: nothing more can be answered."""


# most whole answers are done sooner: their watcher (a task awaiting the client's next message)
# is only made once they last longer, so a disconnect is noticed within this delay. A stream is
# watched from its start.
WATCH_AFTER_SECONDS = 0.05


class ClientWatch:
    """Cancels the task serving a request when its client disconnects."""

    __slots__ = ("gone", "receive", "task", "timers", "watcher")

    def __init__(self, receive: Receive, after: float = 0.0) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.gone = False
        self.receive = receive
        self.watcher: asyncio.Task[None] | None = None
        self.timers: TimerGroup | None = None
        if after:
            # one loop timer for every request's delayed start (gateway/timers.py)
            self.timers = timer_group(task.get_loop(), after)
            self.timers.set(self, self._begin)
        else:
            self._begin()

    def _begin(self) -> None:
        self.timers = None
        self.watcher = self.task.get_loop().create_task(self._watch())

    async def _watch(self) -> None:
        receive = self.receive
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        if self.timers is not None:
            self.timers.cancel(self)
        if self.watcher is not None:
            self.watcher.cancel()

    def absorb(self) -> None:
        """Called on CancelledError: swallow the cancellation it caused, re-raise any other."""
        if not self.gone:
            raise asyncio.CancelledError
        self.task.uncancel()


class Draining:
    """The streams this worker is relaying, and what to do with them when it stops."""

    def __init__(self) -> None:
        self.streams: set[asyncio.Task[Any]] = set()
        self.closing: set[asyncio.Task[Any]] = set()  # streams told to stop at the deadline
        self.started = False

    def begin(self, drain_seconds: float) -> None:
        """The worker was told to stop: close the streams still running at the deadline."""
        if self.started:
            return
        self.started = True
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, drain_seconds - DRAIN_MARGIN_SECONDS), self.close_streams)

    def close_streams(self) -> None:
        for task in list(self.streams):
            self.closing.add(task)
            task.cancel()


DRAINING = Draining()


def watch_stop_signals(drain_seconds: Callable[[], float]) -> None:
    """Hooks SIGTERM/SIGINT in this worker (alongside the server's own handling, which stops
    accepting and waits for in-flight work) to start the drain clock for running streams."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(DRAINING.begin, drain_seconds())
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)


async def relay_response(ctx: RequestContext, response: Response) -> None:
    if ctx.openai_route:
        response = openai_response(response)
    ctx.status = 200
    await send_json(ctx.send, 200, response, ctx.answer_headers())


async def relay_stream(ctx: RequestContext) -> None:
    """The stream, shaped to OpenAI's contract, to the client: headers once the upstream has
    accepted it; a failure after that an error event (redacted), then the end."""
    assert ctx.stream is not None
    ctx.tally = StreamTally()
    if isinstance(ctx.stream, OpenAIChatStream) and ctx.stream.untouched:
        # an OpenAI-shaped chat stream: one native call per upstream read (providers/openai_stream.py)
        bodies = ctx.stream.client_events(wants_usage(ctx.payload), ctx.openai_route, ctx.tally)
        stream = None
    else:
        stream = openai_stream_contract(ctx.stream, wants_usage(ctx.payload), ctx.openai_route, ctx.tally)
    send = ctx.send
    task = asyncio.current_task()
    assert task is not None
    DRAINING.streams.add(task)
    ctx.status = 200
    await send(
        {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *ctx.answer_headers()]}
    )
    try:
        if stream is None:
            async for body in bodies:
                await send({"type": "http.response.body", "body": body, "more_body": True})
        else:
            async for batch in stream:
                await send({"type": "http.response.body", "body": encode_chunks(batch), "more_body": True})
        tail = DONE_EVENT
    except GatewayError as exc:
        ctx.error = exc
        record_failure(ctx.scope, exc, None)
        tail = error_event(ctx.table.redactor.text(exc.message), exc.error_type, exc.status)
    except asyncio.CancelledError:
        if task not in DRAINING.closing:
            raise  # the client went away (or the worker is being killed): nothing to send
        task.uncancel()
        tail = error_event(SHUTDOWN_MESSAGE, "service_unavailable", 503)
    except Exception:
        logger.exception("stream failed")
        tail = error_event("Internal server error: see the gateway log.", "server_error", 500)
    finally:
        DRAINING.streams.discard(task)
        await _close(bodies if stream is None else stream)
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()

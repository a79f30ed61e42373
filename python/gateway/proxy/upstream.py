"""The one pooled upstream HTTP client of a worker (data plane), behind one small interface:
`post` for a whole response, `stream` for a response read as it arrives.

Direct origins use the lean HTTP/1.1 client in http1.py (about 2x aiohttp's throughput behind
the same app, 9x httpx's); origins that the environment routes through a proxy use aiohttp.
TLS trusts the system store plus SSL_CERT_FILE / SSL_CERT_DIR (OpenSSL's default verify paths).
HTTPS_PROXY / HTTP_PROXY / NO_PROXY are read once and decided once per origin. Redirects are
not followed, as in MLflow. Transport failures become gateway errors naming the endpoint and
provider, never the URL (query strings can carry keys).

Both transports enforce the same ceilings (limits.py, settings.py): a whole answer over
GATEWAY_MAX_RESPONSE_BYTES (decompressed, counted as it arrives) and a compressed body that
inflates past GATEWAY_MAX_DECOMPRESSION_RATIO are 502s that say so.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import importlib
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from gateway.proxy.http1 import STREAM_PIECE, Http1Connection, Http1Pool, ResponseHead
from gateway.proxy.limits import BodyLimits, ProtocolError, ResponseTooLarge
from gateway.timers import CLOCK_SLACK_SECONDS, timer_group

if TYPE_CHECKING:  # aiohttp loads on first use (see `import_in_thread`)
    from gateway.proxy.aiohttp_transport import AiohttpTransport

Origin = tuple[str, str, int]
# once this many exchanges were in flight at once, and then none for QUIET_SECONDS, the C heap's
# free pages are handed back to the system (glibc's malloc_trim): a burst of slow streams leaves
# less behind. Never under steady traffic, at most once per QUIET_SECONDS.
BURST = 32
QUIET_SECONDS = 2.0


class Deadlines:
    """A routed endpoint's timeouts (`timeouts:`), in seconds, None for no bound of its own:
    connect; request sent -> answer headers; silence inside a stream; a whole answer (and a
    stream's headers); a stream's whole duration. What is not set keeps the route timeout's
    role (MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS): a whole answer, a stream's headers, a stream's
    silences."""

    __slots__ = ("between_chunks", "connect", "first_byte", "stream_total", "total")

    def __init__(
        self,
        connect: float | None,
        first_byte: float | None,
        between_chunks: float,
        total: float,
        stream_total: float | None,
    ) -> None:
        self.connect = connect
        self.first_byte = first_byte
        self.between_chunks = between_chunks
        self.total = total
        self.stream_total = stream_total


class Exchange:
    """What one attempt saw of its answer: the upstream's status once its headers arrived (None:
    none arrived, so the request may be retried without it having been processed)."""

    __slots__ = ("head_at", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.head_at = 0.0


# set by the attempt loop (routing/attempts.py) around each attempt of a routed endpoint
EXCHANGE: ContextVar[Exchange | None] = ContextVar("gateway_exchange", default=None)


def _saw_head(status: int) -> None:
    exchange = EXCHANGE.get()
    if exchange is not None:
        exchange.status = status
        exchange.head_at = time.perf_counter()


# set by observe/tracing.py when traces are on: adds the request's `traceparent` to the headers
inject_trace: Callable[[dict[str, str]], dict[str, str]] | None = None


class UpstreamResponse:
    __slots__ = ("body", "content_type", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names
        self.content_type = headers.get("content-type", "")
        self.body = body


class UpstreamStream:
    """An open streaming response; `iter_chunks` yields body bytes as they arrive."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str],
        chunks: AsyncIterator[bytes],
        release: Callable[[], None],
        label: str,
        timeout: float,
        limits: BodyLimits | None = None,
        deadline: tuple[float, float] | None = None,
        complete: Callable[[], bool] | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_type = headers.get("content-type", "")
        self._chunks = chunks
        self._release = release
        self._label = label
        self._timeout = timeout
        self._limits = limits or BodyLimits()
        self._released = False
        self._deadline = deadline  # (loop time, total seconds) a stream must end by
        self._complete = complete  # whether the body was read to its end (our HTTP/1.1 client)

    async def read_all(self) -> bytes:
        """The whole body (an error answer to a stream request), under the response cap."""
        cap = self._limits.max_response_bytes
        parts = []
        size = 0
        try:
            async for chunk in self.iter_chunks():
                size += len(chunk)
                if cap and size > cap:
                    error = self._limits.response_too_large()
                    raise UpstreamUnavailable(f"{self._label} {error}")
                parts.append(chunk)
            return b"".join(parts)
        finally:
            self.release()

    async def iter_chunks(self) -> AsyncGenerator[bytes, None]:
        if self._deadline is not None:
            async for chunk in self._iter_until_deadline(*self._deadline):
                yield chunk
            return
        chunks = self._chunks
        watch = _IdleWatch(self._timeout)
        try:
            while True:
                watch.task = task = asyncio.current_task()
                if task is not None:
                    watch.cancelling = task.cancelling()
                watch.since = watch.loop.time()
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if watch.expired and task is not None and task.uncancel() <= watch.cancelling:
                        raise UpstreamTimeout(
                            f"{self._label} stopped sending for {self._timeout:g}s."
                        ) from None
                    raise
                except BaseException as error:
                    _raise_translated(error, self._label, self._timeout, "stopped sending for")
                    raise
                finally:
                    watch.since = None
                yield chunk
        finally:
            watch.close()

    async def _iter_until_deadline(self, deadline: float, total: float) -> AsyncGenerator[bytes, None]:
        """`iter_chunks` for an endpoint with `timeouts.total_seconds`: the stream must also end
        by its deadline."""
        chunks = self._chunks
        loop = asyncio.get_running_loop()
        while True:
            ends = min(loop.time() + self._timeout, deadline)
            try:
                async with asyncio.timeout_at(ends):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if ends == deadline:
                    raise UpstreamTimeout(
                        f"{self._label} did not finish its stream within {total:g}s."
                    ) from None
                raise UpstreamTimeout(f"{self._label} stopped sending for {self._timeout:g}s.") from None
            except GatewayError:
                raise
            except ResponseTooLarge as exc:
                raise UpstreamUnavailable(f"{self._label} {exc}") from None
            except transport_errors() as exc:
                raise UpstreamUnavailable(f"{self._label} could not be reached: {describe(exc)}") from None
            yield chunk

    async def drain(self, seconds: float = 0.25, most: int = 65536) -> None:
        """Once the event stream has ended by its own marker (`data: [DONE]`), read what is left
        of the HTTP framing (typically the final empty chunk) so the connection can be kept
        alive, then release it. Bounded in time and bytes; anything odd just closes it."""
        read = 0
        try:
            async with asyncio.timeout(seconds):
                async for chunk in self._chunks:
                    read += len(chunk)
                    if read > most:
                        break
        except TimeoutError:
            pass
        except transport_errors():
            pass
        self.release()

    async def release_if_complete(self) -> bool:
        """Once the event stream has ended by its own marker: when the HTTP framing has been
        read too (usually the same read), the connection goes back to the pool now, with no
        `drain` task. False when something is left to drain."""
        if self._complete is None or not self._complete():
            return False
        # the body's reader ends at once (it has nothing left): closed now, not by a
        # finalizer task when it is collected
        await anext(self._chunks, None)
        self.release()
        return True

    def release(self) -> None:
        if not self._released:  # releasing twice would pool one connection twice
            self._released = True
            self._release()


class Transport(Protocol):
    """What a provider needs from the network: the seam a test replaces with recorded exchanges
    (tests/support/transport.py) to check a provider's request building, response parsing and
    stream translation in process, without a gateway or an upstream server."""

    async def post(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamResponse: ...

    async def stream(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamStream: ...


class TimedTransport:
    """The client as seen by one routed endpoint: its own timeouts, and each answer's headers
    reported to the attempt loop (`EXCHANGE`). Shares the client's pools."""

    __slots__ = ("client", "deadlines", "timeout_seconds")

    def __init__(self, client: UpstreamClient, deadlines: Deadlines) -> None:
        self.client = client
        self.deadlines = deadlines
        self.timeout_seconds = deadlines.total

    async def post(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamResponse:
        return await self.client.post(url, headers, body, label, self.deadlines)

    async def stream(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamStream:
        return await self.client.stream(url, headers, body, label, self.deadlines)


class UpstreamClient:
    def __init__(
        self, timeout_seconds: float, limits: BodyLimits | None = None, pool_size: int | None = None
    ) -> None:
        from gateway.settings import settings

        self.timeout_seconds = timeout_seconds
        self.limits = limits or BodyLimits.from_settings()
        self._ssl = ssl.create_default_context()
        size = settings().upstream_idle_connections if pool_size is None else pool_size
        self._pool = Http1Pool(self._ssl, timeout_seconds, self.limits, size)
        self._aiohttp: AiohttpTransport | None = None  # made by the first proxied request
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_by_origin: dict[Origin, str | None] = {}
        self._targets: dict[str, tuple[Origin, bytes]] = {}
        self.active = 0  # exchanges in flight (streams until released)
        self._burst = 0  # the most in flight since the heap was last trimmed
        self._last_begin = 0.0
        self._trim_timer: asyncio.TimerHandle | None = None

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, label: str, timed: Deadlines | None = None
    ) -> UpstreamResponse:
        if inject_trace is not None:
            headers = inject_trace(headers)
        self._begin()
        try:
            return await self._post(url, headers, body, label, timed)
        finally:
            self._end()

    async def _post(
        self, url: str, headers: dict[str, str], body: bytes, label: str, timed: Deadlines | None = None
    ) -> UpstreamResponse:
        total = self.timeout_seconds if timed is None else timed.total
        with _Deadline(label, total, "did not answer within"):
            origin, head = self._target(url)
            proxy = self.proxy_for_origin(origin)
            if proxy is not None:
                proxied = await self._proxied()
                async with await proxied.open(url, headers, body, proxy, stream=False) as response:
                    if timed is not None:
                        _saw_head(response.status)
                    data = await proxied.read_body(response, self.limits)
                    return UpstreamResponse(
                        response.status, response.reason or "", _lower(response.headers), data
                    )
            conn, status = await self._exchange(
                origin, head, headers, body, self.limits.max_response_bytes, timed, label
            )
            if timed is not None:
                _saw_head(status.status)
            try:
                data = await conn.read_body()
            finally:
                self._pool.release(conn)
            return UpstreamResponse(status.status, status.reason, status.headers, data)

    async def stream(
        self, url: str, headers: dict[str, str], body: bytes, label: str, timed: Deadlines | None = None
    ) -> UpstreamStream:
        if inject_trace is not None:
            headers = inject_trace(headers)
        self._begin()
        try:
            return await self._stream(url, headers, body, label, timed)
        except BaseException:
            self._end()
            raise

    async def _stream(
        self, url: str, headers: dict[str, str], body: bytes, label: str, timed: Deadlines | None = None
    ) -> UpstreamStream:
        """Open a stream. Under an endpoint's own timeouts (`timed`) the headers must arrive
        within both the first-byte and the total timeout, the stream end within the total."""
        if timed is None:
            head_within = between = self.timeout_seconds
            deadline = None
        else:
            until = timed.stream_total
            deadline = (asyncio.get_running_loop().time() + until, until) if until is not None else None
            head_within = timed.total if until is None else min(timed.total, until)
            between = timed.between_chunks
        with _Deadline(label, head_within, "did not answer within"):
            origin, head = self._target(url)
            proxy = self.proxy_for_origin(origin)
            if proxy is not None:
                proxied = await self._proxied()
                response = await proxied.open(url, headers, body, proxy, stream=True)
                if timed is not None:
                    _saw_head(response.status)
                return UpstreamStream(
                    response.status,
                    response.reason or "",
                    _lower(response.headers),
                    proxied.chunks(response, self.limits),
                    lambda: self._released(response.release),
                    label,
                    between,
                    self.limits,
                    deadline,
                )
            conn, status = await self._exchange(origin, head, headers, body, 0, timed, label)
        if timed is not None:
            _saw_head(status.status)
        return UpstreamStream(
            status.status,
            status.reason,
            status.headers,
            # one piece at a time (8 KiB at most): a relay behind a slow client holds one
            # piece's parsed events, and the connection pauses the socket past its high water
            conn.iter_body(STREAM_PIECE),
            lambda: self._released(lambda: self._pool.release(conn)),
            label,
            between,
            self.limits,
            deadline,
            conn.complete,
        )

    async def _exchange(
        self,
        origin: Origin,
        head: bytes,
        headers: dict[str, str],
        body: bytes,
        max_body: int = 0,
        timed: Deadlines | None = None,
        label: str = "",
    ) -> tuple[Http1Connection, ResponseHead]:
        if timed is not None and (timed.connect is not None or timed.first_byte is not None):
            return await self._timed_exchange(origin, head, headers, body, max_body, timed, label)
        request = b"".join((head, _header_block(headers, len(body)), body))
        for attempt in (1, 2):
            conn, reused = await self._pool.acquire(origin, fresh=attempt == 2)
            try:
                return conn, await conn.send(request, max_body)
            except ProtocolError:
                conn.abort()
                # a kept-alive connection the server had closed before answering anything:
                # the request never reached it, so once more on a new connection. After any
                # byte of an answer the POST may have been processed (and billed): no retry.
                if reused and not conn.answered and attempt == 1:
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
        raise AssertionError("unreachable")

    async def _timed_exchange(
        self,
        origin: Origin,
        head: bytes,
        headers: dict[str, str],
        body: bytes,
        max_body: int,
        timed: Deadlines,
        label: str,
    ) -> tuple[Http1Connection, ResponseHead]:
        """`_exchange` with a connect timeout and a first-byte timeout (request sent -> headers)."""
        request = b"".join((head, _header_block(headers, len(body)), body))
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(timed.connect):
                    conn, reused = await self._pool.acquire(origin, fresh=attempt == 2)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"{label} could not be connected to within {timed.connect:g}s."
                ) from None
            try:
                async with asyncio.timeout(timed.first_byte):
                    return conn, await conn.send(request, max_body)
            except TimeoutError:
                conn.abort()
                raise UpstreamTimeout(f"{label} did not answer within {timed.first_byte:g}s.") from None
            except ProtocolError:
                conn.abort()
                if reused and not conn.answered and attempt == 1:
                    continue  # a kept-alive connection the server had closed: see `_exchange`
                raise
            except BaseException:
                conn.abort()
                raise
        raise AssertionError("unreachable")

    async def _proxied(self) -> AiohttpTransport:
        """The aiohttp transport, made on the first request to an origin behind a proxy: a
        worker that has none never loads aiohttp (about 10 MB)."""
        transport = self._aiohttp
        if transport is None:
            await import_in_thread("gateway.proxy.aiohttp_transport")
            from gateway.proxy.aiohttp_transport import AiohttpTransport

            transport = self._aiohttp  # another request may have made it meanwhile
            if transport is None:
                transport = self._aiohttp = AiohttpTransport(self._ssl, self.timeout_seconds)
        return transport

    def _released(self, release: Callable[[], None]) -> None:
        try:
            release()
        finally:
            self._end()

    def _begin(self) -> None:
        self.active += 1
        if self.active > self._burst:
            self._burst = self.active
        self._last_begin = time.monotonic()

    def _end(self) -> None:
        self.active -= 1
        if self.active == 0 and self._burst >= BURST and self._trim_timer is None:
            with suppress(RuntimeError):
                self._trim_timer = asyncio.get_running_loop().call_later(QUIET_SECONDS, self._quiet)

    def _quiet(self) -> None:
        self._trim_timer = None
        if self.active == 0 and time.monotonic() - self._last_begin >= QUIET_SECONDS * 0.9:
            self._burst = 0
            _trim_heap()

    def _target(self, url: str) -> tuple[Origin, bytes]:
        """(origin, request line + Host header) for a URL, computed once per URL."""
        cached = self._targets.get(url)
        if cached is not None:
            return cached
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GatewayError("An upstream URL in the configuration is not an http(s) URL.", status=500)
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port or default_port
        origin = (parts.scheme, parts.hostname, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6 literal
        host = name if port == default_port else f"{name}:{port}"
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")
        if len(self._targets) < 10_000:  # URLs are per endpoint; bound it anyway
            self._targets[url] = (origin, head)
        return origin, head

    def proxy_for(self, url: str) -> str | None:
        return self.proxy_for_origin(self._target(url)[0])

    def proxy_for_origin(self, origin: Origin) -> str | None:
        try:
            return self._proxy_by_origin[origin]
        except KeyError:
            pass
        scheme, host, _ = origin
        proxy: str | None = self._proxies.get(scheme)
        if proxy and bypasses_proxy(host, self._proxies.get("no", "")):
            proxy = None
        self._proxy_by_origin[origin] = proxy
        return proxy

    async def close(self) -> None:
        if self._trim_timer is not None:
            self._trim_timer.cancel()
        self._pool.close()
        if self._aiohttp is not None:
            await self._aiohttp.close()


_IMPORTED: set[str] = set()


async def import_in_thread(module: str) -> None:
    """Imports `module` the first time, in a thread: aiohttp (for proxied origins, health
    checks and forwarded GET/DELETEs) takes about 0.2 s to import, which would stall every
    request on the event loop. The caller then imports it again, from sys.modules."""
    if module not in _IMPORTED:
        await asyncio.to_thread(importlib.import_module, module)
        _IMPORTED.add(module)


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, ProtocolError)


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a failed exchange raises, for `except` clauses (evaluated only once something was
    raised): OSError, ProtocolError and, once aiohttp is loaded, its ClientError (none can exist
    before)."""
    client_error = getattr(sys.modules.get("aiohttp"), "ClientError", None)
    return _TRANSPORT_ERRORS if client_error is None else (*_TRANSPORT_ERRORS, client_error)


_LIBC: list[ctypes.CDLL | None] = []  # loaded on first use; None where there is no malloc_trim


def _trim_heap() -> None:
    """glibc's malloc_trim(0): freed heap pages go back to the system (a no-op elsewhere)."""
    if not _LIBC:
        libc: ctypes.CDLL | None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            libc = None
        _LIBC.append(libc)
    if _LIBC[0] is not None:
        _LIBC[0].malloc_trim(0)


def _header_block(headers: dict[str, str], length: int) -> bytes:
    lines = []
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            # never let a config value inject headers; the value itself is not echoed
            raise GatewayError(
                f"The upstream header '{name.strip()}' has a line break in its value.", status=500
            )
        if name.lower() not in ("content-length", "host", "transfer-encoding"):
            lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {length}\r\nUser-Agent: gateway\r\nAccept-Encoding: gzip, deflate\r\n\r\n")
    return "".join(lines).encode("latin-1")


def _lower(headers: object) -> dict[str, str]:
    items = headers.items() if hasattr(headers, "items") else ()
    return {str(k).lower(): str(v) for k, v in items}


class _Deadline:
    """`asyncio.timeout(seconds)` and transport failures turned into gateway errors that name
    the endpoint and provider, in one plain context manager: on the request path a deadline
    costs one timer, not a timeout object and a generator (asyncio.timeout's own semantics:
    only its own cancellation becomes the timeout)."""

    __slots__ = ("cancelling", "expired", "group", "label", "seconds", "task", "waited")

    def __init__(self, label: str, seconds: float, waited: str) -> None:
        self.label = label
        self.seconds = seconds
        self.waited = waited

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.cancelling = task.cancelling()
        self.expired = False
        # one loop timer for all the deadlines of this length (gateway/timers.py)
        self.group = timer_group(task.get_loop(), self.seconds)
        self.group.set(self, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self.task.cancel()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: Any) -> None:
        self.group.cancel(self)
        if self.expired and self.task.uncancel() <= self.cancelling and kind is asyncio.CancelledError:
            raise UpstreamTimeout(f"{self.label} {self.waited} {self.seconds:g}s.") from None
        if error is not None and not isinstance(error, asyncio.CancelledError):
            _raise_translated(error, self.label, self.seconds, self.waited)


class _IdleWatch:
    """A stream's idle deadline as one timer for the whole stream, not one per read: reads
    mark when they start waiting (`since`), and the timer, when it fires, cancels the reader
    that has waited `seconds` or sets itself for when the current wait would reach them."""

    __slots__ = ("cancelling", "expired", "handle", "loop", "seconds", "since", "task")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[Any] | None = None  # the reader, and its cancellations
        self.cancelling = 0  # before the read began: only the watch's own becomes the timeout
        self.since: float | None = None
        self.expired = False
        self.handle = self.loop.call_at(self.loop.time() + seconds, self._check)

    def _check(self) -> None:
        # the clock counts milliseconds (uvloop): a timer may run a fraction of one early
        since, now = self.since, self.loop.time() + CLOCK_SLACK_SECONDS
        if since is not None and now - since >= self.seconds and self.task is not None:
            self.expired = True
            self.task.cancel()
            return
        self.handle = self.loop.call_at((since if since is not None else now) + self.seconds, self._check)

    def close(self) -> None:
        self.handle.cancel()


def _raise_translated(error: BaseException, label: str, timeout: float, waited: str) -> None:
    """A transport failure as the gateway error naming the endpoint; anything else passes."""
    if isinstance(error, TimeoutError):
        raise UpstreamTimeout(f"{label} {waited} {timeout:g}s.") from None
    if isinstance(error, GatewayError):
        return
    if isinstance(error, ResponseTooLarge):  # "sent a response larger than the 64 MiB limit (...)"
        raise UpstreamUnavailable(f"{label} {error}") from None
    if isinstance(error, transport_errors()):
        raise UpstreamUnavailable(f"{label} could not be reached: {describe(error)}") from None


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """curl's NO_PROXY rules: '*', an exact host, or a domain suffix (with or without a dot)."""
    host = host.lower().strip("[]")
    for entry in no_proxy.lower().replace(" ", "").split(","):
        if entry.startswith("["):  # [v6] or [v6]:port
            entry = entry[1:].split("]")[0]
        elif entry.count(":") == 1:  # host:port
            entry = entry.split(":")[0]
        entry = entry.lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def describe(exc: BaseException) -> str:
    """A reason without the URL."""
    client_error = getattr(sys.modules.get("aiohttp"), "ClientError", None)
    if client_error is not None and isinstance(exc, client_error):
        reason = _describe_aiohttp(exc)
        if reason is not None:
            return reason
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _untrusted(exc)
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, ProtocolError):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return "the host name did not resolve"
    if isinstance(exc, OSError):
        return f"connection failed ({exc.strerror or type(exc).__name__})"
    return type(exc).__name__


def _describe_aiohttp(exc: BaseException) -> str | None:
    """`describe` of an aiohttp error (aiohttp is loaded: its error exists); None: as others."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _untrusted(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return None


def _untrusted(error: BaseException) -> str:
    reason = getattr(error, "verify_message", None) or "untrusted certificate"
    return f"TLS certificate verification failed ({reason}); set SSL_CERT_FILE for a private CA"

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
import socket
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from gateway.proxy.aiohttp_transport import AiohttpTransport
from gateway.proxy.http1 import STREAM_PIECE, Http1Connection, Http1Pool, ResponseHead
from gateway.proxy.limits import BodyLimits, ProtocolError, ResponseTooLarge

Origin = tuple[str, str, int]
# once this many exchanges were in flight at once, and then none for QUIET_SECONDS, the C heap's
# free pages are handed back to the system (glibc's malloc_trim): a burst of slow streams leaves
# less behind. Never under steady traffic, at most once per QUIET_SECONDS.
BURST = 32
QUIET_SECONDS = 2.0


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

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        chunks = self._chunks
        with _failures(self._label, self._timeout, "stopped sending for"):
            while True:
                async with asyncio.timeout(self._timeout):
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
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
        except (TimeoutError, OSError, ProtocolError, aiohttp.ClientError):
            pass
        self.release()

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
        self._aiohttp = AiohttpTransport(self._ssl, timeout_seconds)
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_by_origin: dict[Origin, str | None] = {}
        self._targets: dict[str, tuple[Origin, bytes]] = {}
        self.active = 0  # exchanges in flight (streams until released)
        self._burst = 0  # the most in flight since the heap was last trimmed
        self._last_begin = 0.0
        self._trim_timer: asyncio.TimerHandle | None = None

    async def post(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamResponse:
        self._begin()
        try:
            return await self._post(url, headers, body, label)
        finally:
            self._end()

    async def _post(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamResponse:
        with _failures(label, self.timeout_seconds, "did not answer within"):
            async with asyncio.timeout(self.timeout_seconds):
                origin, head = self._target(url)
                proxy = self.proxy_for_origin(origin)
                if proxy is not None:
                    async with await self._aiohttp.open(url, headers, body, proxy, stream=False) as response:
                        data = await AiohttpTransport.read_body(response, self.limits)
                        return UpstreamResponse(
                            response.status, response.reason or "", _lower(response.headers), data
                        )
                conn, status = await self._exchange(
                    origin, head, headers, body, self.limits.max_response_bytes
                )
                try:
                    data = await conn.read_body()
                finally:
                    self._pool.release(conn)
                return UpstreamResponse(status.status, status.reason, status.headers, data)

    async def stream(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamStream:
        self._begin()
        try:
            return await self._stream(url, headers, body, label)
        except BaseException:
            self._end()
            raise

    async def _stream(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamStream:
        with _failures(label, self.timeout_seconds, "did not answer within"):
            async with asyncio.timeout(self.timeout_seconds):
                origin, head = self._target(url)
                proxy = self.proxy_for_origin(origin)
                if proxy is not None:
                    response = await self._aiohttp.open(url, headers, body, proxy, stream=True)
                    return UpstreamStream(
                        response.status,
                        response.reason or "",
                        _lower(response.headers),
                        AiohttpTransport.chunks(response, self.limits),
                        lambda: self._released(response.release),
                        label,
                        self.timeout_seconds,
                        self.limits,
                    )
                conn, status = await self._exchange(origin, head, headers, body)
        return UpstreamStream(
            status.status,
            status.reason,
            status.headers,
            # one piece at a time (8 KiB at most): a relay behind a slow client holds one
            # piece's parsed events, and the connection pauses the socket past its high water
            conn.iter_body(STREAM_PIECE),
            lambda: self._released(lambda: self._pool.release(conn)),
            label,
            self.timeout_seconds,
            self.limits,
        )

    async def _exchange(
        self, origin: Origin, head: bytes, headers: dict[str, str], body: bytes, max_body: int = 0
    ) -> tuple[Http1Connection, ResponseHead]:
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
        await self._aiohttp.close()


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


@contextmanager
def _failures(label: str, timeout: float, waited: str) -> Iterator[None]:
    """Transport failures as gateway errors that name the endpoint and provider."""
    try:
        yield
    except TimeoutError:
        raise UpstreamTimeout(f"{label} {waited} {timeout:g}s.") from None
    except GatewayError:
        raise
    except ResponseTooLarge as exc:  # "sent a response larger than the 64 MiB limit (...)"
        raise UpstreamUnavailable(f"{label} {exc}") from None
    except (OSError, ProtocolError, aiohttp.ClientError) as exc:
        raise UpstreamUnavailable(f"{label} could not be reached: {describe(exc)}") from None


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
    if isinstance(exc, ssl.SSLCertVerificationError | aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error if isinstance(exc, aiohttp.ClientConnectorCertificateError) else exc
        reason = getattr(error, "verify_message", None) or "untrusted certificate"
        return f"TLS certificate verification failed ({reason}); set SSL_CERT_FILE for a private CA"
    if isinstance(exc, ssl.SSLError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, ProtocolError):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return "the host name did not resolve"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, OSError):
        return f"connection failed ({exc.strerror or type(exc).__name__})"
    return type(exc).__name__

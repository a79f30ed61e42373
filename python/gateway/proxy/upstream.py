"""The one pooled upstream HTTP client of a worker (data plane).

aiohttp on the hot path: measured 9x the throughput of httpx.AsyncClient behind the same Granian
app (../shared/bench/results-peers.md). One session per worker, created lazily inside the
running loop, reused by every request. TLS trusts the system store plus SSL_CERT_FILE /
SSL_CERT_DIR (OpenSSL's default verify paths). HTTPS_PROXY / HTTP_PROXY / NO_PROXY are read once and decided
once per upstream host: aiohttp's own trust_env re-reads the environment and ~/.netrc in a
thread on every request, which cost 60% of a worker's CPU in profiles. Redirects are not
followed, as in MLflow.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import aiohttp

from gateway.errors import UpstreamTimeout, UpstreamUnavailable


class UpstreamResponse:
    __slots__ = ("body", "content_type", "reason", "status")

    def __init__(self, status: int, content_type: str, reason: str, body: bytes) -> None:
        self.status = status
        self.content_type = content_type
        self.reason = reason
        self.body = body


class UpstreamStream:
    """An open streaming response; `iter_chunks` yields bytes as they arrive."""

    __slots__ = ("_label", "_response", "_timeout", "content_type", "reason", "status")

    def __init__(self, response: aiohttp.ClientResponse, label: str, timeout: float) -> None:
        self._response = response
        self._label = label
        self._timeout = timeout
        self.status = response.status
        self.content_type = response.headers.get("content-type", "")
        self.reason = response.reason or ""

    async def read_all(self) -> bytes:
        try:
            return await self._response.read()
        finally:
            self.release()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"{self._label} stopped sending for {self._timeout:g}s.") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{self._label} broke the stream: {type(exc).__name__}.") from None

    def release(self) -> None:
        self._response.release()


class UpstreamClient:
    def __init__(self, timeout_seconds: float, limit_per_host: int = 0) -> None:
        self.timeout_seconds = timeout_seconds
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_by_origin: dict[tuple[str, str], str | None] = {}
        self._total = aiohttp.ClientTimeout(total=timeout_seconds)
        # streams may run long: bound the wait for the headers and each read, not the total
        self._streaming = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_seconds, sock_read=timeout_seconds
        )

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=self._limit_per_host,
                ssl=ssl.create_default_context(),
                ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "gateway"},
            )
        return self._session

    async def post(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamResponse:
        with self._failures(label):
            response = await self._send(url, headers, body, self._total)
            try:
                payload = await response.read()
            finally:
                response.release()
        return UpstreamResponse(
            response.status, response.headers.get("content-type", ""), response.reason or "", payload
        )

    async def stream(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamStream:
        with self._failures(label):
            response = await self._send(url, headers, body, self._streaming)
        return UpstreamStream(response, label, self.timeout_seconds)

    def _send(
        self, url: str, headers: dict[str, str], body: bytes, timeout: aiohttp.ClientTimeout
    ) -> aiohttp.client._RequestContextManager:
        return self.session().post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False, proxy=self.proxy_for(url)
        )

    @contextmanager
    def _failures(self, label: str) -> Iterator[None]:
        """Transport failures as gateway errors that name the endpoint and provider."""
        try:
            yield
        except TimeoutError:
            raise UpstreamTimeout(f"{label} did not answer within {self.timeout_seconds:g}s.") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{label} could not be reached: {describe(exc)}") from None

    def proxy_for(self, url: str) -> str | None:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        try:
            return self._proxy_by_origin[origin]
        except KeyError:
            pass
        proxy: str | None = self._proxies.get(parts.scheme)
        if proxy and bypasses_proxy(parts.hostname or "", self._proxies.get("no", "")):
            proxy = None
        self._proxy_by_origin[origin] = proxy
        return proxy

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """curl's NO_PROXY rules: '*', an exact host, or a domain suffix (with or without a dot)."""
    host = host.lower()
    for entry in no_proxy.lower().replace(" ", "").split(","):
        entry = entry.split(":")[0].lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def describe(exc: aiohttp.ClientError) -> str:
    """A reason without the URL: query strings can carry keys (Gemini's `?key=`)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or "untrusted certificate"
        return f"TLS certificate verification failed ({reason}); set SSL_CERT_FILE for a private CA"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return type(exc).__name__

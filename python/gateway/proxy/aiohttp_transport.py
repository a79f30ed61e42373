"""aiohttp as the upstream transport for origins reached through an HTTP(S) proxy.

The lean client in http1.py speaks to origins directly; proxies (absolute-form requests,
CONNECT tunnels, proxy auth) are aiohttp's job. One session per worker, created lazily inside
the running loop; this module (and aiohttp, about 10 MB) is imported by the first proxied
request (UpstreamClient._proxied), so workers without a proxy never load it.

aiohttp's own decompression is off: bodies are inflated by limits.Inflater, in bounded steps and
under the same ratio and size caps as the direct path. Reads are pulled by the caller, so
aiohttp's flow control (its StreamReader pauses the socket past 2 x 64 KiB) holds end to end.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp

from gateway.proxy.limits import INFLATE_STEP, BodyLimits, Inflater


class AiohttpTransport:
    def __init__(self, ssl_context: ssl.SSLContext, timeout_seconds: float) -> None:
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._total = aiohttp.ClientTimeout(total=timeout_seconds)
        # streams may run long: bound the wait for the headers and each read, not the total
        self._streaming = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_seconds, sock_read=timeout_seconds
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl, keepalive_timeout=30),
                trust_env=False,  # proxies are decided once per origin by UpstreamClient
                skip_auto_headers=("User-Agent",),
                auto_decompress=False,  # see read_body / chunks
            )
        return self._session

    async def open(
        self, url: str, headers: dict[str, str], body: bytes, proxy: str, stream: bool
    ) -> aiohttp.ClientResponse:
        if not any(name.lower() == "accept-encoding" for name in headers):
            # only what Inflater decodes (aiohttp would also offer br / zstd when installed)
            headers = {**headers, "Accept-Encoding": "gzip, deflate"}
        return await self._client().post(
            url,
            data=body,
            headers=headers,
            proxy=proxy,
            allow_redirects=False,
            timeout=self._streaming if stream else self._total,
        )

    @staticmethod
    async def read_body(response: aiohttp.ClientResponse, limits: BodyLimits) -> bytes:
        """The whole body, decoded, refused as soon as it passes the response cap."""
        cap = limits.max_response_bytes
        declared = response.content_length
        if cap and declared is not None and declared > cap:
            raise limits.response_too_large()
        parts = []
        size = 0
        async for part in AiohttpTransport.chunks(response, limits, whole=True):
            size += len(part)
            if cap and size > cap:
                raise limits.response_too_large()
            parts.append(part)
        return b"".join(parts)

    @staticmethod
    async def chunks(
        response: aiohttp.ClientResponse, limits: BodyLimits, whole: bool = False
    ) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, inflated in bounded steps as the caller pulls them; a
        stream (not `whole`, which the size cap bounds) under the decompression ratio cap."""
        ratio = 0.0 if whole else limits.max_decompression_ratio
        inflater = Inflater.for_encoding(response.headers.get("Content-Encoding", ""), ratio)
        async for raw in response.content.iter_any():
            if inflater is None:
                yield raw
                continue
            inflater.feed(raw)
            while out := inflater.read(INFLATE_STEP):
                yield out
        if inflater is not None:
            tail = inflater.flush()
            if tail:
                yield tail

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

"""aiohttp as the upstream transport for origins reached through an HTTP(S) proxy.

The lean client in http1.py speaks to origins directly; proxies (absolute-form requests,
CONNECT tunnels, proxy auth) are aiohttp's job. One session per worker, created lazily inside
the running loop.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp


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
            )
        return self._session

    async def open(
        self, url: str, headers: dict[str, str], body: bytes, proxy: str, stream: bool
    ) -> aiohttp.ClientResponse:
        return await self._client().post(
            url,
            data=body,
            headers=headers,
            proxy=proxy,
            allow_redirects=False,
            timeout=self._streaming if stream else self._total,
        )

    @staticmethod
    async def chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        async for chunk in response.content.iter_any():
            yield chunk

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

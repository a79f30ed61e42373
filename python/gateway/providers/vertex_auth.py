"""Google Cloud OAuth2 bearer tokens for Vertex AI, from google-auth.

Credentials come from `vertex_credentials` (a service-account or authorized-user JSON, inline
or as a file path), else from Application Default Credentials (`google.auth.default()`). The
token is fetched in a worker thread (google-auth is blocking) under one lock per endpoint, and
reused until google-auth considers it close to expiry (its refresh threshold, a few minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport
import google.oauth2.credentials
import google.oauth2.service_account

from gateway.errors import ConfigError, UpstreamUnavailable

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TOKEN_TIMEOUT_SECONDS = 30.0
# google-auth is untyped: its credentials objects are handled as Any
Credentials = Any
LOADERS: dict[str, Any] = {
    "service_account": google.oauth2.service_account.Credentials.from_service_account_info,
    "authorized_user": google.oauth2.credentials.Credentials.from_authorized_user_info,
}


def load_credentials(source: str) -> Credentials:
    """A JSON string or a path to a JSON file -> scoped credentials (no network)."""
    text = source.strip()
    if not text.startswith("{"):
        try:
            with open(os.path.expanduser(text), encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(
                "vertex_credentials must be a service-account JSON string or the path to one "
                f"(cannot read the file: {exc.strerror})"
            ) from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError("vertex_credentials is not valid JSON") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind in LOADERS:
        try:
            return LOADERS[kind](info, scopes=SCOPES)
        except (ValueError, KeyError) as exc:
            # google-auth names the missing field; the key itself is never in the message
            raise ConfigError(f"vertex_credentials ({kind}) is incomplete: {exc}") from None
    raise ConfigError(
        f"vertex_credentials of type {kind!r} is not supported: use a service_account or authorized_user "
        "JSON, or leave it unset for Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)"
    )


class GoogleTokens:
    """Authorization headers for one endpoint, refreshed off the event loop."""

    def __init__(self, credentials: Credentials | None) -> None:
        self._credentials = credentials  # None: Application Default Credentials, found lazily
        self._lock = asyncio.Lock()
        self._transport = UrllibTransport()

    async def headers(self, label: str) -> dict[str, str]:
        credentials = self._credentials
        if credentials is None or not credentials.valid:
            async with self._lock:  # one refresh at a time; the others reuse its token
                credentials = await self._refreshed(label)
        headers: dict[str, str] = {}
        credentials.apply(headers)  # authorization, plus x-goog-user-project when set
        return headers

    async def _refreshed(self, label: str) -> Credentials:
        credentials = self._credentials
        if credentials is not None and credentials.valid:
            return credentials
        try:
            credentials = await asyncio.to_thread(self._refresh, credentials)
        except google.auth.exceptions.GoogleAuthError as exc:
            raise UpstreamUnavailable(f"{label} could not get a Google access token: {exc}") from None
        self._credentials = credentials
        return credentials

    def _refresh(self, credentials: Credentials | None) -> Credentials:
        """Blocking: runs in a worker thread."""
        if credentials is None:
            credentials, _ = google.auth.default(scopes=SCOPES)
        credentials.refresh(self._transport)
        return credentials


class UrllibResponse(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, headers, data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class UrllibTransport(google.auth.transport.Request):
    """google-auth's HTTP hook on the standard library, so token calls honour the same
    HTTPS_PROXY / NO_PROXY and SSL_CERT_FILE settings as upstream calls without `requests`."""

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> UrllibResponse:
        request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout or TOKEN_TIMEOUT_SECONDS) as response:
                return UrllibResponse(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            return UrllibResponse(exc.code, dict(exc.headers), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise google.auth.exceptions.TransportError(message) from None  # type: ignore[no-untyped-call]

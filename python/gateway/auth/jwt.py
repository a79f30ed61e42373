"""Signed bearer JWTs (OIDC access tokens) as consumer credentials: `auth.jwt` in the config.

`JwtVerifier.verify(token)` checks the signature against the issuer's public keys (a JWKS
document, from `jwks_file` or `jwks_url`), then the issuer, the audience (when configured),
`exp` / `nbf` / `iat` with `leeway_seconds`, and maps the claims to a `JwtIdentity`. Anything
wrong raises `Unauthorized` with the reason and never the token.

Only public-key algorithms are accepted (RS*, PS*, ES*, EdDSA), and only those the config
lists: a token whose header names another (`none`, `HS256` signed with the public key as an
HMAC secret, ...) is refused before any key is looked at, and a key is only ever used with an
algorithm of its own type (an RSA key never verifies an ES256 token). Symmetric (`oct`) and
encryption (`use: enc`) keys in a JWKS are ignored; RSA keys under 2048 bits are refused.

Claims: `exp` and `iss` are required. The consumer is `consumer_claim` (a non-empty string; a
number is taken as its decimal string). `team_claim` is optional in a token (absent: None).
When the config names an `endpoints_claim`, a token must carry it: a list of endpoint/route
globs, or one string of them separated by spaces or commas (as OAuth `scope`); missing is 401,
an empty list is 403 (the token allows nothing), so `JwtIdentity.endpoints` is either None (no
endpoints_claim configured) or a non-empty tuple. A claim name with dots (`realm_access.roles`)
also reaches into nested objects when no top-level claim has that exact name.

Keys from `jwks_url` are fetched in a thread (never on the event loop) with a short timeout and
cached. They are fetched again when a token names an unknown `kid`, at most once every
REFETCH_SECONDS (a flood of made-up kids costs one fetch per 30 s), and in the background once
they are REFRESH_SECONDS old. A failed fetch keeps the cached keys and is logged at most once
every FAILURE_LOG_SECONDS.

Verified tokens are remembered (up to CACHE_SIZE, until they expire), so a client that sends
the same token on every call pays for the signature check once. Per call, measured with
`python -m gateway.auth.jwt` (CPython 3.11, cryptography 48, PyJWT 2.15, on a shared 2-core VM
that other test runs were loading):

    verify, a token seen before (cache hit)            ~0.3-0.5 us
    verify, first sight, RS256 (2048-bit) / ES256      ~95-140 us / ~155-230 us (on the loop)
    looks_like_jwt, a ~450-character RS256 token       ~2.3-3.3 us
    looks_like_jwt, a gateway key (`gw-...`)           ~0.3 us
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import msgspec
import orjson

from gateway.config.model import JwtConfig
from gateway.errors import ConfigError, Forbidden, Unauthorized

logger = logging.getLogger("gateway.auth")

FETCH_TIMEOUT_SECONDS = 5.0  # one JWKS fetch, connect to last byte
REFETCH_SECONDS = 30.0  # at most one fetch per this many seconds (unknown kid, failures)
REFRESH_SECONDS = 600.0  # keys older than this are refreshed in the background
FAILURE_LOG_SECONDS = 60.0  # a failing JWKS URL is logged at most this often
MAX_JWKS_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 16 * 1024
CACHE_SIZE = 4096  # verified tokens remembered until they expire...
CACHED_TOKEN_CHARS = 4096  # ...when no longer than this (the cache stays under 16 MiB)

# algorithm -> (key type, curve) it needs; the public-key algorithms PyJWT implements
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES256K": ("EC", "secp256k1"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}

_BASE64URL_AND_DOT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
_TO_STANDARD_BASE64 = bytes.maketrans(b"-_", b"+/")
_PRINTABLE_ALG = re.compile(r"[A-Za-z0-9+_-]{1,16}")


class JwtIdentity(msgspec.Struct, frozen=True):
    """Who a verified JWT speaks for."""

    consumer: str  # the `consumer_claim` (default `sub`)
    team: str | None  # the `team_claim`, None when not configured or absent
    # the `endpoints_claim`: endpoint/route globs the token allows, never empty; None when the
    # config names no endpoints_claim (the token is not restricted by it)
    endpoints: tuple[str, ...] | None
    expires_at: float  # `exp`, Unix seconds


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer credential is shaped as a JWT (three base64url segments, a JSON header
    with `alg`), as opposed to a gateway key (`gw-...`) or another provider's key. It says
    nothing about validity: `alg: none` tokens look like JWTs, and `verify` refuses them."""
    header = _header(token)
    return header is not None and isinstance(header.get("alg"), str)


def _header(token: str) -> dict[str, Any] | None:
    """The decoded header of a token shaped as a JWT: three base64url segments, the first two
    non-empty (an unsigned token has no third); None for anything else."""
    first = token.find(".")
    second = token.find(".", first + 1)
    if first <= 0 or second <= first + 1 or token.find(".", second + 1) >= 0:
        return None
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    data = token.encode()
    if data.translate(None, _BASE64URL_AND_DOT):  # a character outside base64url
        return None
    segment = data[:first].translate(_TO_STANDARD_BASE64) + b"=" * (-first % 4)
    try:
        header = orjson.loads(binascii.a2b_base64(segment))
    except (binascii.Error, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _denied(reason: str) -> Unauthorized:
    return Unauthorized(f"Invalid JWT: {reason}")


class _KeySet:
    """Public keys of one JWKS document, by kid."""

    __slots__ = ("by_kid", "keys")

    def __init__(self, keys: list[tuple[str | None, dict[str, Any], pyjwt.PyJWK]]) -> None:
        self.keys = keys  # (kid, the JWK as published, the key)
        self.by_kid: dict[str, list[tuple[str | None, dict[str, Any], pyjwt.PyJWK]]] = {}
        for entry in keys:
            if entry[0] is not None:
                self.by_kid.setdefault(entry[0], []).append(entry)

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, kid: str | None, alg: str) -> list[Any]:
        """The keys that may verify a token with this kid and alg: the kid's keys, or every
        key when the token names no kid; only keys of the algorithm's type."""
        entries = self.keys if kid is None else self.by_kid.get(kid, [])
        kty, crv = KEY_TYPES[alg]
        return [
            key.key
            for _, jwk, key in entries
            if jwk.get("kty") == kty
            and (crv is None or jwk.get("crv") == crv)
            and jwk.get("alg") in (None, alg)
        ]


def parse_jwks(data: bytes) -> _KeySet:
    """The usable public signing keys of a JWKS document; ValueError (reason) if it has none."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ValueError("not a JSON document") from None
    if isinstance(document, dict) and "keys" not in document and "kty" in document:
        document = {"keys": [document]}  # a single JWK
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS document ({"keys": [...]})')
    keys: list[tuple[str | None, dict[str, Any], pyjwt.PyJWK]] = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # symmetric ("oct") or unknown keys are never trusted
        if jwk.get("use", "sig") != "sig" or (jwk.get("alg") is not None and jwk["alg"] not in KEY_TYPES):
            continue
        kid = jwk.get("kid")
        try:
            key = pyjwt.PyJWK(jwk)
        except (pyjwt.PyJWKError, pyjwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        keys.append((kid if isinstance(kid, str) else None, jwk, key))
    if not keys:
        raise ValueError("no usable public signing key (RSA, EC or OKP)")
    return _KeySet(keys)


def _display_url(url: str) -> str:
    """The JWKS URL without credentials or query, for logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class JwtVerifier:
    """Verifies bearer JWTs against one `auth.jwt` config. Build it once per config; one per
    worker (it holds an asyncio task while fetching keys)."""

    def __init__(
        self,
        config: JwtConfig,
        *,
        fetch_timeout: float = FETCH_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        refused = [alg for alg in config.algorithms if alg not in KEY_TYPES]
        if refused or not config.algorithms:
            raise ConfigError(
                f"auth.jwt.algorithms: {', '.join(map(repr, refused)) or 'empty'}: only public-key "
                f"algorithms are accepted ({', '.join(KEY_TYPES)})"
            )
        self.config = config
        self._algorithms = frozenset(config.algorithms)
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._options: Any = {
            "require": ["exp", "iss"],
            "verify_aud": config.audience is not None,
            "enforce_minimum_key_length": True,  # RSA under 2048 bits is refused
        }
        self._keys: _KeySet | None = None
        self._url = config.jwks_url
        self._fetched_at: float | None = None  # last successful fetch (clock)
        self._attempted_at: float | None = None  # last fetch started (clock)
        self._failure_logged_at: float | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._ssl: ssl.SSLContext | None = None
        self._cache: dict[str, JwtIdentity] = {}
        if self._url is not None:
            if urllib.parse.urlsplit(self._url).scheme not in ("http", "https"):
                raise ConfigError("auth.jwt.jwks_url: must be an http:// or https:// URL")
        elif config.jwks_file is not None:
            try:
                with open(config.jwks_file, "rb") as file:
                    self._keys = parse_jwks(file.read(MAX_JWKS_BYTES + 1))
            except OSError as exc:
                raise ConfigError(
                    f"auth.jwt.jwks_file: cannot read {config.jwks_file}: {exc.strerror or exc}"
                ) from None
            except ValueError as exc:
                raise ConfigError(f"auth.jwt.jwks_file: {config.jwks_file}: {exc}") from None
        else:
            raise ConfigError("auth.jwt: give exactly one of jwks_url or jwks_file")

    async def verify(self, token: str) -> JwtIdentity:
        """The identity a valid token speaks for; `Unauthorized` (the reason, never the token)
        otherwise. `Forbidden` when the token is valid but its endpoints claim allows nothing."""
        cached = self._cache.get(token)
        if cached is not None:
            if time.time() <= cached.expires_at + self.config.leeway_seconds:
                return cached
            del self._cache[token]
        if len(token) > MAX_TOKEN_CHARS:
            raise _denied("token too large")
        header = _header(token)
        if header is None:
            raise _denied("malformed token (expected three base64url segments with a JSON header)")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            shown = f"'{alg}'" if isinstance(alg, str) and _PRINTABLE_ALG.fullmatch(alg) else "its"
            raise _denied(
                f"algorithm {shown} is not accepted (accepted: {', '.join(self.config.algorithms)})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _denied("the 'kid' header must be a string")
        keys = await self._keys_for(kid, alg)
        payload = self._decode(token, keys, alg)
        identity = self._identity(payload)
        if len(token) <= CACHED_TOKEN_CHARS:
            if len(self._cache) >= CACHE_SIZE:  # drop the oldest entry
                del self._cache[next(iter(self._cache))]
            self._cache[token] = identity
        return identity

    # keys

    async def _keys_for(self, kid: str | None, alg: str) -> list[Any]:
        if self._url is not None:
            now = self._clock()
            if self._keys is None:
                if self._inflight is not None or self._may_fetch(now):
                    await self._refresh()
            elif (
                self._fetched_at is not None
                and now - self._fetched_at >= REFRESH_SECONDS
                and self._inflight is None
                and self._may_fetch(now)
            ):
                self._start_refresh()  # in the background: this token uses the cached keys
        if self._keys is None:
            raise _denied("the issuer's signing keys are not available (JWKS fetch failed)")
        candidates = self._keys.candidates(kid, alg)
        rotated = not candidates and kid is not None and kid not in self._keys.by_kid
        if (
            rotated
            and self._url is not None
            and (self._inflight is not None or self._may_fetch(self._clock()))
        ):
            await self._refresh()  # a key published since the last fetch?
            candidates = self._keys.candidates(kid, alg)
        if not candidates:
            if kid is not None and kid not in self._keys.by_kid:
                raise _denied("unknown signing key (kid)")
            raise _denied(f"no signing key for algorithm '{alg}'")
        return candidates

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= REFETCH_SECONDS

    def _start_refresh(self) -> asyncio.Future[None]:
        if self._inflight is None:
            self._attempted_at = self._clock()
            self._inflight = asyncio.ensure_future(self._fetch_and_store())
        return self._inflight

    async def _refresh(self) -> None:
        await asyncio.shield(self._start_refresh())

    async def _fetch_and_store(self) -> None:
        try:
            keys = await asyncio.to_thread(self._fetch)
        except Exception as exc:  # kept: the cached keys stay in use
            self._fetch_failed(exc)
        else:
            self._keys = keys
            self._fetched_at = self._clock()
        finally:
            self._inflight = None

    def _fetch(self) -> _KeySet:
        """One JWKS fetch (in a worker thread): honours HTTPS_PROXY / NO_PROXY and trusts the
        system store plus SSL_CERT_FILE / SSL_CERT_DIR, as upstream calls do."""
        assert self._url is not None
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        request = urllib.request.Request(self._url, headers={"accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self._fetch_timeout, context=self._ssl) as response:
            body = response.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        return parse_jwks(body)

    def _fetch_failed(self, exc: BaseException) -> None:
        now = self._clock()
        if self._failure_logged_at is not None and now - self._failure_logged_at < FAILURE_LOG_SECONDS:
            return
        self._failure_logged_at = now
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code}"
        elif isinstance(exc, urllib.error.URLError):
            reason = str(exc.reason)
        else:
            reason = str(exc) or type(exc).__name__
        kept = f"keeping the {len(self._keys)} cached key(s)" if self._keys else "no keys cached yet"
        logger.warning("JWKS fetch from %s failed (%s); %s", _display_url(self._url or ""), reason, kept)

    # claims

    def _decode(self, token: str, keys: list[Any], alg: str) -> dict[str, Any]:
        config = self.config
        for key in keys:
            try:
                payload: dict[str, Any] = pyjwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    issuer=config.issuer,
                    audience=config.audience,
                    leeway=config.leeway_seconds,
                    options=self._options,
                )
                return payload
            except pyjwt.InvalidSignatureError:
                continue  # another key with this kid (or none) may have signed it
            except pyjwt.ExpiredSignatureError:
                raise _denied("the token has expired") from None
            except pyjwt.ImmatureSignatureError as exc:  # nbf, or iat, later than now + leeway
                claim = "iat" if "iat" in str(exc) else "nbf"
                raise _denied(f"the token is not valid yet ({claim} is in the future)") from None
            except pyjwt.InvalidIssuedAtError:
                raise _denied("the token's issue time (iat) is invalid") from None
            except pyjwt.InvalidIssuerError:
                raise _denied("the issuer (iss) is not the one configured") from None
            except pyjwt.InvalidAudienceError:
                raise _denied("the audience (aud) is not the one configured") from None
            except pyjwt.MissingRequiredClaimError as exc:
                raise _denied(f"the '{exc.claim}' claim is missing") from None
            except pyjwt.DecodeError:
                raise _denied("malformed token") from None
            except pyjwt.InvalidKeyError:
                raise _denied("the signing key is too weak (RSA under 2048 bits)") from None
            except pyjwt.InvalidTokenError:
                raise _denied("invalid header or claims") from None
            except (TypeError, ValueError):  # a key PyJWT cannot use with this algorithm
                continue
        raise _denied("signature verification failed")

    def _identity(self, payload: dict[str, Any]) -> JwtIdentity:
        config = self.config
        consumer = _claim(payload, config.consumer_claim)
        if isinstance(consumer, int) and not isinstance(consumer, bool):
            consumer = str(consumer)
        if not isinstance(consumer, str) or not consumer:
            raise _denied(f"the '{config.consumer_claim}' claim (the consumer) is missing or not a string")
        team = None
        if config.team_claim is not None:
            team = _claim(payload, config.team_claim)
            if team is not None and (not isinstance(team, str) or not team):
                raise _denied(f"the '{config.team_claim}' claim (the team) is not a string")
        endpoints = None
        if config.endpoints_claim is not None:
            endpoints = _endpoints(_claim(payload, config.endpoints_claim), config.endpoints_claim)
        exp = payload["exp"]  # required, and checked as a number by PyJWT
        return JwtIdentity(consumer=consumer, team=team, endpoints=endpoints, expires_at=float(exp))


def _claim(payload: dict[str, Any], name: str) -> Any:
    """A claim by name; a dotted name (`realm_access.roles`) also looks into nested objects
    when no top-level claim has that exact name."""
    if name in payload or "." not in name:
        return payload.get(name)
    value: Any = payload
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _endpoints(value: Any, claim: str) -> tuple[str, ...]:
    """The endpoints claim: a list of globs, or one string of globs separated by spaces or
    commas (as OAuth `scope` is). Missing: 401. Present but empty: 403, it allows nothing."""
    if value is None:
        raise _denied(f"the '{claim}' claim (the endpoints it may call) is missing")
    if isinstance(value, str):
        items = [item for item in re.split(r"[\s,]+", value) if item]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value if item.strip()]
    else:
        raise _denied(f"the '{claim}' claim must be a list of endpoint names or globs")
    if not items:
        raise Forbidden(f"This token's '{claim}' claim allows no endpoint")
    return tuple(items)


def _measure() -> None:  # pragma: no cover - prints the figures quoted in the module docstring
    import json
    import tempfile

    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {**json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r"},
            {**json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e"},
        ]
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(jwks, file)
        file.flush()
        verifier = JwtVerifier(JwtConfig(issuer="https://idp", jwks_file=file.name))

    def tokens(key: Any, alg: str, kid: str, n: int) -> list[str]:
        exp = int(time.time()) + 3600
        claims = {"iss": "https://idp", "exp": exp}
        return [pyjwt.encode({**claims, "sub": f"u{i}"}, key, alg, headers={"kid": kid}) for i in range(n)]

    async def run() -> None:
        for label, batch in (
            ("verify, first sight, RS256", tokens(rsa_key, "RS256", "r", 2000)),
            ("verify, first sight, ES256", tokens(ec_key, "ES256", "e", 2000)),
        ):
            started = time.perf_counter()
            for token in batch:
                await verifier.verify(token)
            print(f"{label}: {(time.perf_counter() - started) / len(batch) * 1e6:.1f} us")
            started = time.perf_counter()
            for _ in range(10):
                for token in batch:
                    await verifier.verify(token)
            print(f"verify, seen before: {(time.perf_counter() - started) / len(batch) / 10 * 1e6:.2f} us")
        for label, credential in (
            ("an RS256 token", tokens(rsa_key, "RS256", "r", 1)[0]),
            ("gw-...", "gw-" + "k" * 40),
        ):
            batch = [credential] * 100_000
            started = time.perf_counter()
            for token in batch:
                looks_like_jwt(token)
            print(f"looks_like_jwt, {label}: {(time.perf_counter() - started) / len(batch) * 1e6:.2f} us")

    asyncio.run(run())


if __name__ == "__main__":  # pragma: no cover
    _measure()

"""auth/jwt.py: bearer JWTs checked against a JWKS (file or URL), with test RSA and EC keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.auth.jwt import JwtIdentity, JwtVerifier, looks_like_jwt
from gateway.config.model import JwtConfig
from gateway.errors import ConfigError, Forbidden, Unauthorized

ISSUER = "https://idp.example.com/realms/main"
AUDIENCE = "llm-gateway"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_384 = ec.generate_private_key(ec.SECP384R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def jwk(private_key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(private_key, rsa.RSAPrivateKey):
        data = pyjwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        data = pyjwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = pyjwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**data, "kid": kid, **extra}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


DEFAULT_JWKS = jwks(jwk(RSA_KEY, "rsa-1"), jwk(EC_KEY, "ec-1"), jwk(EC_384, "ec-384"), jwk(ED_KEY, "ed-1"))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now, "exp": now + 600}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def token(key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa-1", **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return pyjwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(DEFAULT_JWKS))
    return path


def file_verifier(path: Path, **config: Any) -> JwtVerifier:
    settings: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(path)}
    settings.update(config)
    return JwtVerifier(JwtConfig(**settings))


def verify(verifier: JwtVerifier, credential: str) -> JwtIdentity:
    return asyncio.run(verifier.verify(credential))


def refused(verifier: JwtVerifier, credential: str, error: type[Exception] = Unauthorized) -> str:
    """The refusal's message; also checks that no part of the token leaks into it."""
    with pytest.raises(error) as caught:
        verify(verifier, credential)
    exc = caught.value
    assert isinstance(exc, Unauthorized | Forbidden)
    rendered = f"{exc} {exc.message} {exc.body().decode()} {exc.body('openai').decode()}"
    assert credential not in rendered
    for segment in credential.split("."):
        if len(segment) >= 8:
            assert segment not in rendered
    if isinstance(exc, Unauthorized):
        assert exc.status == 401 and (b"www-authenticate", b'Bearer realm="gateway"') in exc.headers()
    return exc.message


# valid tokens


def test_valid_rs256_token(jwks_file):
    identity = verify(file_verifier(jwks_file), token())
    assert identity.consumer == "alice"
    assert identity.team is None and identity.endpoints is None
    assert identity.expires_at == pytest.approx(time.time() + 600, abs=5)


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [
        (EC_KEY, "ES256", "ec-1"),
        (EC_384, "ES384", "ec-384"),
        (ED_KEY, "EdDSA", "ed-1"),
        (RSA_KEY, "PS256", "rsa-1"),
    ],
)
def test_valid_tokens_of_each_key_type(jwks_file, key, alg, kid):
    verifier = file_verifier(jwks_file, algorithms=("RS256", "PS256", "ES256", "ES384", "EdDSA"))
    assert verify(verifier, token(key, alg, kid, sub=f"user-{alg}")).consumer == f"user-{alg}"


def test_token_without_kid_tries_the_keys_of_its_type(jwks_file):
    verifier = file_verifier(jwks_file)
    assert verify(verifier, token(EC_KEY, "ES256", kid=None)).consumer == "alice"
    assert verify(verifier, token(RSA_KEY, "RS256", kid=None, sub="bob")).consumer == "bob"


def test_audience_not_configured_accepts_any_audience(jwks_file):
    verifier = file_verifier(jwks_file, audience=None)
    assert verify(verifier, token(aud="something-else")).consumer == "alice"
    assert verify(verifier, token(aud=None)).consumer == "alice"


def test_audience_list_containing_ours(jwks_file):
    assert verify(file_verifier(jwks_file), token(aud=["other", AUDIENCE])).consumer == "alice"


# refused tokens


def test_expired(jwks_file):
    now = int(time.time())
    message = refused(file_verifier(jwks_file), token(exp=now - 120, iat=now - 600, nbf=now - 600))
    assert "expired" in message


def test_leeway_applies_to_exp_nbf_and_iat(jwks_file):
    now = int(time.time())
    verifier = file_verifier(jwks_file, leeway_seconds=30)
    assert verify(verifier, token(exp=now - 10)).consumer == "alice"  # within the leeway
    assert verify(verifier, token(nbf=now + 10, iat=now + 10, sub="bob")).consumer == "bob"
    strict = file_verifier(jwks_file, leeway_seconds=0)
    assert "expired" in refused(strict, token(exp=now - 10))


def test_not_yet_valid(jwks_file):
    now = int(time.time())
    message = refused(file_verifier(jwks_file), token(nbf=now + 3600, iat=now))
    assert "not valid yet (nbf" in message


def test_issued_in_the_future(jwks_file):
    now = int(time.time())
    assert "iat is in the future" in refused(file_verifier(jwks_file), token(iat=now + 3600, nbf=None))


def test_wrong_issuer(jwks_file):
    assert "issuer" in refused(file_verifier(jwks_file), token(iss="https://evil.example.com"))


def test_missing_issuer_or_exp(jwks_file):
    verifier = file_verifier(jwks_file)
    assert "'iss'" in refused(verifier, token(iss=None))
    assert "'exp'" in refused(verifier, token(exp=None))


def test_wrong_audience(jwks_file):
    verifier = file_verifier(jwks_file)
    assert "audience" in refused(verifier, token(aud="another-service"))
    assert "'aud'" in refused(verifier, token(aud=None))


def test_bad_signature(jwks_file):
    verifier = file_verifier(jwks_file)
    # signed by another key under a published kid
    assert "signature" in refused(verifier, token(RSA_OTHER, "RS256", "rsa-1"))
    # a payload swapped after signing
    header, _, signature = token().split(".")
    payload = b64(json.dumps(claims(sub="admin")).encode())
    assert "signature" in refused(verifier, f"{header}.{payload}.{signature}")


def test_algorithm_not_in_the_list(jwks_file):
    verifier = file_verifier(jwks_file, algorithms=("RS256",))
    message = refused(verifier, token(EC_KEY, "ES256", "ec-1"))
    assert "'ES256' is not accepted" in message and "RS256" in message
    assert "not accepted" in refused(verifier, token(RSA_KEY, "PS256", "rsa-1"))


def test_alg_none_is_refused(jwks_file):
    unsigned = forged({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims(), None)
    assert looks_like_jwt(unsigned)
    assert "'none' is not accepted" in refused(file_verifier(jwks_file), unsigned)
    for spelling in ("None", "NONE", "nOnE"):
        assert "not accepted" in refused(file_verifier(jwks_file), forged({"alg": spelling}, claims(), None))


def test_hs256_signed_with_the_public_key_is_refused(jwks_file):
    """The classic confusion attack: HS256 with the RSA public key (PEM, or the JWK) as the
    HMAC secret. It must never reach a verifier that would accept it."""
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = file_verifier(jwks_file)
    for secret in (public_pem, json.dumps(jwk(RSA_KEY, "rsa-1")).encode()):
        for kid in ("rsa-1", None):
            header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
            assert "'HS256' is not accepted" in refused(verifier, forged(header, claims(), secret))


def test_key_of_another_type_never_verifies(jwks_file):
    # an ES256 token naming the RSA key's kid: the key is never tried with this algorithm
    verifier = file_verifier(jwks_file, algorithms=("RS256", "ES256"))
    message = refused(verifier, token(EC_KEY, "ES256", "rsa-1"))
    assert "no signing key for algorithm 'ES256'" in message
    # an ES256 token naming the P-384 key's kid: curve mismatch
    assert "no signing key" in refused(verifier, token(EC_KEY, "ES256", "ec-384"))


def test_unknown_kid_from_a_file_is_refused_without_fetching(jwks_file):
    assert "unknown signing key" in refused(file_verifier(jwks_file), token(kid="nope"))


def test_malformed_tokens(jwks_file):
    verifier = file_verifier(jwks_file)
    for credential in ("gw-abc.def.ghi", "a.b", "not a token", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.!!!.sig"):
        message = refused(verifier, credential)
        assert "malformed" in message or "not accepted" in message
    # garbage after a valid header fails the signature first
    header = b64(b'{"alg":"RS256","kid":"rsa-1"}')
    assert "signature" in refused(verifier, f"{header}.{b64(b'not json')}.{b64(b'x' * 256)}")
    # a signed payload that is not a JSON object
    signed = pyjwt.api_jws.PyJWS().encode(b"not json", RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    assert "malformed" in refused(verifier, signed)
    assert "too large" in refused(verifier, "a" * 20_000)
    assert "kid" in refused(verifier, forged({"alg": "RS256", "kid": 7}, claims(), b"x"))


# claims


def test_claims_map_to_consumer_team_and_endpoints(jwks_file):
    verifier = file_verifier(
        jwks_file, consumer_claim="email", team_claim="team", endpoints_claim="gateway_endpoints"
    )
    identity = verify(
        verifier, token(email="alice@example.com", team="research", gateway_endpoints=["chat", "embed-*"])
    )
    assert identity == JwtIdentity(
        consumer="alice@example.com",
        team="research",
        endpoints=("chat", "embed-*"),
        expires_at=identity.expires_at,
    )


def test_endpoints_claim_as_a_scope_string(jwks_file):
    verifier = file_verifier(jwks_file, endpoints_claim="scope")
    assert verify(verifier, token(scope="chat  completions,embed-*")).endpoints == (
        "chat",
        "completions",
        "embed-*",
    )


def test_nested_claims(jwks_file):
    verifier = file_verifier(jwks_file, team_claim="org.team", endpoints_claim="gateway.endpoints")
    identity = verify(verifier, token(org={"team": "infra"}, gateway={"endpoints": ["chat"]}))
    assert identity.team == "infra" and identity.endpoints == ("chat",)


def test_team_claim_absent_is_none(jwks_file):
    assert verify(file_verifier(jwks_file, team_claim="team"), token()).team is None


def test_bad_claims(jwks_file):
    verifier = file_verifier(jwks_file, consumer_claim="email", team_claim="team", endpoints_claim="eps")
    assert "'email'" in refused(verifier, token(eps=["chat"]))  # no consumer
    assert "'email'" in refused(verifier, token(email="", eps=["chat"]))
    assert "'team'" in refused(verifier, token(email="a@b", team=["x"], eps=["chat"]))
    assert "'eps'" in refused(verifier, token(email="a@b"))  # the endpoints claim is required
    assert "'eps'" in refused(verifier, token(email="a@b", eps=[1, 2]))
    # present but empty: a valid token that may call nothing
    assert "allows no endpoint" in refused(verifier, token(email="a@b", eps=[]), Forbidden)


def test_numeric_subject_is_a_string(jwks_file):
    assert verify(file_verifier(jwks_file, consumer_claim="uid"), token(uid=12345)).consumer == "12345"


def test_a_verified_token_is_remembered_until_it_expires(jwks_file):
    verifier = file_verifier(jwks_file, leeway_seconds=0)
    now = time.time()
    short = token(exp=int(now) + 1)
    first = verify(verifier, short)
    assert verify(verifier, short) is first  # from the cache
    time.sleep(max(0.0, first.expires_at - time.time()) + 1.1)
    assert "expired" in refused(verifier, short)


# configuration


def test_symmetric_algorithms_are_refused_by_the_verifier_too(jwks_file):
    for algorithms in (("HS256",), ("RS256", "none"), ()):
        with pytest.raises(ConfigError, match="public-key algorithms"):
            file_verifier(jwks_file, algorithms=algorithms)


def test_jwks_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        file_verifier(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a JSON document"):
        file_verifier(bad)
    symmetric = tmp_path / "oct.json"
    symmetric.write_text(json.dumps(jwks({"kty": "oct", "k": b64(b"secret" * 6), "kid": "h"})))
    with pytest.raises(ConfigError, match="no usable public signing key"):
        file_verifier(symmetric)


def test_jwks_file_ignores_symmetric_and_encryption_keys(tmp_path):
    path = tmp_path / "mixed.json"
    oct_key = {"kty": "oct", "k": b64(b"secret" * 6), "kid": "shared"}
    path.write_text(json.dumps(jwks(oct_key, jwk(RSA_OTHER, "enc", use="enc"), jwk(RSA_KEY, "rsa-1"))))
    verifier = file_verifier(path)
    assert verify(verifier, token()).consumer == "alice"
    hs = forged({"alg": "HS256", "kid": "shared"}, claims(), b"secret" * 6)
    assert "not accepted" in refused(verifier, hs)
    assert "unknown signing key" in refused(verifier, token(RSA_OTHER, kid="enc"))


def test_a_single_jwk_file_is_accepted(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(jwk(RSA_KEY, "rsa-1")))
    assert verify(file_verifier(path), token()).consumer == "alice"


def test_jwks_url_must_be_http(tmp_path):
    with pytest.raises(ConfigError, match="http"):
        JwtVerifier(JwtConfig(issuer=ISSUER, jwks_url="file:///etc/passwd"))


# looks_like_jwt


def test_looks_like_jwt():
    assert looks_like_jwt(token())
    assert looks_like_jwt(token(EC_KEY, "ES256", "ec-1"))
    assert looks_like_jwt(forged({"alg": "none"}, claims(), None))
    for other in (
        "gw-0123456789abcdef",
        "sk-proj-abc.def.ghi",
        "a.b.c",  # the header is not JSON
        f"{b64(b'[1]')}.e30.sig",  # not an object
        f"{b64(b'{}')}.e30.sig",  # no alg
        f"{b64(json.dumps({'alg': 7}).encode())}.e30.sig",
        f"{b64(b'{}')}.e30",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}..sig",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}.e30.sig.more",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}.e3+0.sig",
        "",
        "é.é.é",
    ):
        assert not looks_like_jwt(other), other


# keys from a JWKS URL


class JwksServer:
    """A local JWKS endpoint that counts its requests."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = jwks(jwk(RSA_KEY, "rsa-1"))
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                time.sleep(server.delay)
                body = json.dumps(server.document).encode()
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(monkeypatch) -> Iterator[JwksServer]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    jwks_server = JwksServer()
    yield jwks_server
    jwks_server.stop()


def url_verifier(server: JwksServer, clock: Clock, **config: Any) -> JwtVerifier:
    settings: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": server.url}
    settings.update(config)
    return JwtVerifier(JwtConfig(**settings), clock=clock, fetch_timeout=2.0)


def test_keys_are_fetched_once_and_cached(server):
    verifier = url_verifier(server, Clock())

    async def run() -> None:
        for index in range(5):
            assert (await verifier.verify(token(sub=f"user-{index}"))).consumer == f"user-{index}"

    asyncio.run(run())
    assert server.requests == 1


def test_concurrent_first_requests_share_one_fetch(server):
    server.delay = 0.2
    verifier = url_verifier(server, Clock())

    async def run() -> list[JwtIdentity]:
        return await asyncio.gather(*(verifier.verify(token(sub=f"u{i}")) for i in range(10)))

    assert [identity.consumer for identity in asyncio.run(run())] == [f"u{i}" for i in range(10)]
    assert server.requests == 1


def test_the_fetch_does_not_block_the_event_loop(server):
    server.delay = 0.5
    verifier = url_verifier(server, Clock())

    async def run() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await verifier.verify(token())
        task.cancel()
        return ticks

    assert asyncio.run(run()) >= 20  # the loop kept running while the JWKS was fetched


def test_unknown_kid_refetches_once_then_at_most_every_30_seconds(server):
    clock = Clock()
    verifier = url_verifier(server, clock, algorithms=("RS256", "ES256"))

    async def run() -> None:
        assert (await verifier.verify(token())).consumer == "alice"
        assert server.requests == 1
        # the issuer rotates in a new key: the first token naming it triggers one refetch
        server.document = jwks(jwk(RSA_KEY, "rsa-1"), jwk(EC_KEY, "ec-2"))
        clock.now += 31
        assert (await verifier.verify(token(EC_KEY, "ES256", "ec-2"))).consumer == "alice"
        assert server.requests == 2
        # made-up kids within 30 s of that fetch: refused without fetching
        for index in range(20):
            clock.now += 1
            with pytest.raises(Unauthorized, match="unknown signing key"):
                await verifier.verify(token(RSA_OTHER, kid=f"made-up-{index}"))
        assert server.requests == 2
        # 30 s after the last fetch another unknown kid may fetch again, once
        clock.now += 10
        with pytest.raises(Unauthorized, match="unknown signing key"):
            await verifier.verify(token(RSA_OTHER, kid="made-up-again"))
        assert server.requests == 3
        with pytest.raises(Unauthorized, match="unknown signing key"):
            await verifier.verify(token(RSA_OTHER, kid="and-again"))
        assert server.requests == 3
        # known keys keep working throughout
        assert (await verifier.verify(token(sub="bob"))).consumer == "bob"
        assert server.requests == 3

    asyncio.run(run())


def test_unknown_kid_right_after_the_first_fetch_does_not_refetch(server):
    verifier = url_verifier(server, Clock())

    async def run() -> None:
        with pytest.raises(Unauthorized, match="unknown signing key"):
            await verifier.verify(token(kid="new"))
        assert server.requests == 1  # the first fetch, which did not have it

    asyncio.run(run())


def test_keys_are_refreshed_in_the_background_after_10_minutes(server):
    clock = Clock()
    verifier = url_verifier(server, clock)

    async def run() -> None:
        await verifier.verify(token())
        clock.now += 300
        await verifier.verify(token(sub="b"))
        assert server.requests == 1
        clock.now += 301
        await verifier.verify(token(sub="c"))  # served from the cached keys...
        for _ in range(100):  # ...while the refresh runs
            if server.requests == 2:
                break
            await asyncio.sleep(0.02)
        assert server.requests == 2
        await verifier.verify(token(sub="d"))
        assert server.requests == 2

    asyncio.run(run())


def test_fetch_failure_keeps_the_cached_keys_and_logs_once_a_minute(server, caplog):
    clock = Clock()
    verifier = url_verifier(server, clock)
    caplog.set_level(logging.WARNING, logger="gateway.auth")

    async def run() -> None:
        await verifier.verify(token())
        server.status = 500
        for index in range(3):  # three failed refetches (unknown kids), 31 s apart
            clock.now += 31
            with pytest.raises(Unauthorized, match="unknown signing key"):
                await verifier.verify(token(RSA_OTHER, kid=f"k{index}"))
            assert (await verifier.verify(token(sub=f"still-{index}"))).consumer == f"still-{index}"
        assert server.requests == 4

    asyncio.run(run())
    failures = [record.getMessage() for record in caplog.records if "JWKS fetch" in record.getMessage()]
    assert len(failures) == 2  # at 31 s and at 93 s; the one at 62 s is within a minute
    assert "HTTP 500" in failures[0] and "keeping the 1 cached key(s)" in failures[0]
    assert server.url.split("/protocol")[0] in failures[0]


def test_no_keys_at_all_is_a_401_and_is_retried_at_most_every_30_seconds(server, caplog):
    clock = Clock()
    server.status = 503
    verifier = url_verifier(server, clock)
    caplog.set_level(logging.WARNING, logger="gateway.auth")

    async def run() -> None:
        for _ in range(5):
            with pytest.raises(Unauthorized, match="signing keys are not available"):
                await verifier.verify(token())
        assert server.requests == 1
        server.status = 200
        clock.now += 30
        assert (await verifier.verify(token())).consumer == "alice"
        assert server.requests == 2

    asyncio.run(run())
    assert any("no keys cached yet" in record.getMessage() for record in caplog.records)


def test_unreachable_jwks_url(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    verifier = JwtVerifier(
        JwtConfig(issuer=ISSUER, jwks_url="http://127.0.0.1:9/certs"), clock=Clock(), fetch_timeout=1.0
    )
    message = refused(verifier, token())
    assert "signing keys are not available" in message


def test_invalid_jwks_document_keeps_the_cached_keys(server):
    clock = Clock()
    verifier = url_verifier(server, clock)

    async def run() -> None:
        await verifier.verify(token())
        server.document = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}
        clock.now += 31
        with pytest.raises(Unauthorized, match="unknown signing key"):
            await verifier.verify(token(kid="other"))
        assert (await verifier.verify(token(sub="bob"))).consumer == "bob"

    asyncio.run(run())

"""Who may call what, against running gateways with real clients: consumer keys (issued by the
admin API, stored hashed, held in memory by every worker), allowlists, expiry, revocation across
workers and across hosts sharing PostgreSQL, per-key limits, IP lists behind a trusted proxy, and
JWTs signed by a test key."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import jwt as pyjwt
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import launch

ADMIN = "admin-secret-for-tests-0123456789"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
ENDPOINTS = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: mock, name: mock-chat, config: {output_tokens: 3}}
  - name: chat-2
    endpoint_type: llm/v1/chat
    model: {provider: mock, name: mock-chat, config: {output_tokens: 3}}
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model: {provider: mock, name: mock-embeddings, config: {}}
"""


def config(database_url: str, auth: str = "") -> str:
    return f"{ENDPOINTS}database_url: {database_url}\nauth:\n  admin_key: {ADMIN}\n{auth}"


class Admin:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)

    def create(self, **fields) -> dict:
        response = self.http.post("/admin/v1/keys", json={"name": "test", **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def revoke(self, key_id: str) -> None:
        assert self.http.delete(f"/admin/v1/keys/{key_id}").status_code == 200


def chat(url: str, key: str | None = None, name: str = "chat", path: str = "/endpoints") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if path == "/v1":
        return httpx.post(
            f"{url}/v1/chat/completions", json={**CHAT, "model": name}, headers=headers, timeout=10
        )
    return httpx.post(f"{url}/endpoints/{name}/invocations", json=CHAT, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    directory = tmp_path_factory.mktemp("access")
    text = config(f"sqlite:///{directory}/keys.db", "  require_keys: true\n")
    process = launch(directory, text, workers=4)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(gateway):
    return Admin(gateway.url)


def test_no_key_unknown_key_and_valid_key(gateway, admin):
    missing = chat(gateway.url)
    assert missing.status_code == 401 and "gateway key is required" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    unknown = chat(gateway.url, "gw-" + "x" * 43, path="/v1")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["type"] == "authentication_error"
    assert "x" * 43 not in unknown.text
    key = admin.create(name="app")["key"]
    assert key.startswith("gw-") and len(key) >= 46
    assert chat(gateway.url, key).status_code == 200
    # the openai SDK presents it as a bearer token; the anthropic SDK's header works too
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    assert sdk.chat.completions.create(model="chat", messages=CHAT["messages"]).choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="gw-nope", max_retries=0).models.list()
    anthropic_style = httpx.post(
        f"{gateway.url}/endpoints/chat/invocations", json=CHAT, headers={"x-api-key": key}, timeout=10
    )
    assert anthropic_style.status_code == 200
    assert httpx.get(f"{gateway.url}/health").status_code == 200  # always open


def test_mlflow_client_with_a_tracking_token(gateway, admin, monkeypatch):
    from mlflow.deployments import get_deploy_client

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", admin.create(name="mlflow")["key"])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    answer = get_deploy_client(gateway.url).predict(endpoint="chat", inputs=CHAT)
    assert answer["choices"][0]["message"]["content"]


def test_allowlist_is_a_403(gateway, admin):
    key = admin.create(name="narrow", endpoints=["chat"])["key"]
    assert chat(gateway.url, key, "chat").status_code == 200
    refused = chat(gateway.url, key, "chat-2", path="/v1")
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    globbed = admin.create(name="globbed", endpoints=["chat*"])["key"]
    assert chat(gateway.url, globbed, "chat-2").status_code == 200
    embed = httpx.post(
        f"{gateway.url}/v1/embeddings",
        json={"model": "embeddings", "input": "x"},
        headers={"Authorization": f"Bearer {globbed}"},
    )
    assert embed.status_code == 403


def test_expiry(gateway, admin):
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    key = admin.create(name="brief", expires_at=soon)["key"]
    assert chat(gateway.url, key).status_code == 200
    time.sleep(2.5)
    expired = chat(gateway.url, key)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_revocation_reaches_every_worker_within_a_second(gateway, admin):
    created = admin.create(name="doomed")
    key = created["key"]

    def attempt(_: int) -> tuple[float, int]:
        sent = time.monotonic()  # a fresh connection each: spread over the 4 workers
        return sent, chat(gateway.url, key).status_code

    with ThreadPoolExecutor(8) as pool:
        assert {status for _, status in pool.map(attempt, range(32))} == {200}
        admin.revoke(created["id"])
        revoked_at = time.monotonic()
        answers: list[tuple[float, int]] = []
        while time.monotonic() - revoked_at < 1.5:
            answers.extend(pool.map(attempt, range(16)))
    # the last request any worker still admitted was sent less than a second after the revocation
    admitted = [sent - revoked_at for sent, status in answers if status == 200]
    assert max(admitted, default=0.0) < 1.0, admitted
    assert answers[-1][1] == 401 and len(answers) >= 32


def test_a_consumer_key_never_works_on_the_admin_api(gateway, admin):
    key = admin.create(name="nosy")["key"]
    refused = httpx.get(f"{gateway.url}/admin/v1/keys", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403
    assert httpx.get(f"{gateway.url}/admin/v1/keys").status_code == 401


def test_per_key_limit(gateway, admin):
    key = admin.create(name="metered", limit={"calls": 2, "renewal_period": "minute"})["key"]
    assert [chat(gateway.url, key).status_code for _ in range(3)] == [200, 200, 429]
    other = admin.create(name="unmetered")["key"]
    assert chat(gateway.url, other).status_code == 200  # the endpoint itself is not limited


def test_no_secret_in_answers_logs_or_database(gateway, admin, tmp_path_factory):
    created = admin.create(name="scanned")
    key = created["key"]
    chat(gateway.url, key)
    listed = admin.http.get("/admin/v1/keys").text + admin.http.get(f"/admin/v1/keys/{created['id']}").text
    assert key not in listed and key[len(created["prefix"]) :] not in listed
    assert key not in gateway.log() and ADMIN not in gateway.log()
    database = next(gateway.config_path.parent.glob("keys.db"))
    with sqlite3.connect(database) as connection:
        for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                text = json.dumps(row, default=str)
                assert key not in text and key[3:] not in text and ADMIN not in text


def test_keys_not_required_means_mlflows_open_gateway_plus_consumers(tmp_path):
    gateway = launch(tmp_path, config(f"sqlite:///{tmp_path}/keys.db"))
    try:
        assert chat(gateway.url).status_code == 200
        # a token meant for something else (MLflow's client may send one) is ignored
        assert chat(gateway.url, "sk-some-other-service-token").status_code == 200
        admin = Admin(gateway.url)
        narrow = admin.create(name="narrow", endpoints=["chat"])["key"]
        assert chat(gateway.url, narrow, "chat-2").status_code == 403  # the consumer's rules apply
        assert chat(gateway.url, "gw-revoked-or-made-up").status_code == 401
    finally:
        gateway.stop()


def test_two_gateways_sharing_postgres_see_one_revocation_within_two_seconds(postgres, tmp_path):
    url = postgres.create_database()
    text = config(url, "  require_keys: true\n")
    first = launch(tmp_path / "a" if (tmp_path / "a").mkdir() is None else tmp_path, text)
    second = launch(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path, text)
    try:
        created = Admin(first.url).create(name="shared")
        assert chat(second.url, created["key"]).status_code == 200  # issued on one, known on the other
        Admin(first.url).revoke(created["id"])
        revoked_at = time.monotonic()
        while chat(second.url, created["key"]).status_code != 401:
            assert time.monotonic() - revoked_at < 2.0
            time.sleep(0.05)
    finally:
        first.stop()
        second.stop()


def test_ip_lists_behind_a_trusted_proxy(tmp_path):
    auth = "  ip_allow: [10.1.0.0/16]\n  ip_deny: [10.1.66.0/24]\n  trusted_proxies: [127.0.0.1/32]\n"
    gateway = launch(tmp_path, config(f"sqlite:///{tmp_path}/keys.db", auth))
    try:

        def via(address: str) -> int:
            headers = {"X-Forwarded-For": f"{address}, 127.0.0.1"}
            return httpx.post(
                f"{gateway.url}/endpoints/chat/invocations", json=CHAT, headers=headers
            ).status_code

        assert via("10.1.2.3") == 200
        assert via("10.2.0.1") == 403
        assert via("10.1.66.7") == 403  # deny wins
        assert httpx.get(f"{gateway.url}/health").status_code == 200
    finally:
        gateway.stop()


def test_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path):
    auth = "  ip_allow: [10.1.0.0/16]\n"  # no trusted proxies: the peer (127.0.0.1) is the client
    gateway = launch(tmp_path, config(f"sqlite:///{tmp_path}/keys.db", auth))
    try:
        spoofed = httpx.post(
            f"{gateway.url}/endpoints/chat/invocations", json=CHAT, headers={"X-Forwarded-For": "10.1.2.3"}
        )
        assert spoofed.status_code == 403
    finally:
        gateway.stop()


def _jwks(private_key) -> dict:
    numbers = private_key.public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "keys": [
            {
                "kty": "RSA",
                "kid": "test",
                "alg": "RS256",
                "use": "sig",
                "n": b64(numbers.n),
                "e": b64(numbers.e),
            }
        ]
    }


def test_jwt_signed_by_a_test_key(tmp_path):
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(_jwks(private_key)))
    auth = (
        "  require_keys: true\n"
        f"  jwt: {{issuer: https://issuer.test, audience: gateway, jwks_file: {jwks}, team_claim: team, "
        "endpoints_claim: endpoints}\n"
    )
    gateway = launch(tmp_path, config(f"sqlite:///{tmp_path}/keys.db", auth))

    def token(**claims) -> str:
        now = int(time.time())
        body = {"iss": "https://issuer.test", "aud": "gateway", "sub": "svc-a", "iat": now, "exp": now + 60}
        body.update(claims)
        return pyjwt.encode(body, private_key, algorithm="RS256", headers={"kid": "test"})

    try:
        assert chat(gateway.url, token(endpoints=["chat"])).status_code == 200
        assert chat(gateway.url, token(endpoints=["chat"]), "chat-2").status_code == 403
        assert chat(gateway.url, token(aud="someone-else", endpoints=["chat"])).status_code == 401
        expired = token(endpoints=["chat"], exp=int(time.time()) - 120, iat=int(time.time()) - 180)
        assert chat(gateway.url, expired).status_code == 401
        forged = token(endpoints=["chat"])[:-4] + "AAAA"
        assert chat(gateway.url, forged).status_code == 401
    finally:
        gateway.stop()

"""Upstream TLS trusts SSL_CERT_FILE (corporate CAs); HTTP(S)_PROXY and NO_PROXY are honoured."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.configs import openai_config
from tests.support.certs import make_ca_and_server
from tests.support.openai_upstream import OpenAIUpstream

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory):
    ca_path, context = make_ca_and_server(tmp_path_factory.mktemp("tls"))
    server = OpenAIUpstream(context).start()
    yield ca_path, server
    server.stop()


def test_tls_with_a_private_ca_via_ssl_cert_file(start_gateway, tls_upstream):
    ca_path, server = tls_upstream
    gateway = start_gateway(openai_config(server.base), env={"SSL_CERT_FILE": str(ca_path)})
    response = httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT)
    assert response.status_code == 200, response.text
    assert server.last().headers["Authorization"] == "Bearer sk-test-secret-key"


def test_tls_with_an_unknown_ca_is_a_clear_502(start_gateway, tls_upstream):
    _, server = tls_upstream
    gateway = start_gateway(openai_config(server.base))
    response = httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT)
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "endpoint 'chat'" in detail and "TLS certificate verification failed" in detail


def test_http_proxy_is_used_and_no_proxy_bypasses_it(start_gateway, upstream):
    # the upstream host does not resolve: only a proxy can deliver the request
    config = openai_config("http://llm.internal.example:8080/v1")
    proxied = start_gateway(config, env={"HTTP_PROXY": upstream.url})
    response = httpx.post(f"{proxied.url}/endpoints/chat/invocations", json=CHAT)
    assert response.status_code == 200, response.text
    assert upstream.last().headers["Host"] == "llm.internal.example:8080"
    direct = start_gateway(config, env={"HTTP_PROXY": upstream.url, "NO_PROXY": "internal.example"})
    assert httpx.post(f"{direct.url}/endpoints/chat/invocations", json=CHAT).status_code == 502

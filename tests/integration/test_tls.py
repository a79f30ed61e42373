"""TLS termination: `gateway start --ssl-certfile/--ssl-keyfile` with a certificate from a test
CA; the openai SDK trusting that CA completes a chat, a client that does not trust it fails,
and files that cannot serve TLS stop start-up with one line (exit 2) before anything listens."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.server.tls import granian_files, tls_files
from tests.conftest import GatewayProcess, free_port
from tests.support.certs import make_ca_and_server

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
PASSWORD = "correct horse battery staple"


class TlsGateway(GatewayProcess):
    """A gateway serving HTTPS; ready once /health answers over TLS with the test CA."""

    def __init__(self, config_path: Path, ca: Path, extra_args: list[str], env: dict[str, str] | None = None):
        super().__init__(config_path, 1, env, extra_args)
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = ca

    def wait_ready(self, timeout: float = 30) -> TlsGateway:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", verify=trusting(self.ca), timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not become ready:\n{self.log()}")


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca, _ = make_ca_and_server(directory)
    key = load_pem_private_key((directory / "server.key").read_bytes(), None)
    encrypted = directory / "server-encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    config = directory / "demo.yaml"
    config.write_text(DEMO.read_text())
    return {
        "dir": directory,
        "ca": ca,
        "cert": directory / "server.pem",
        "key": directory / "server.key",
        "encrypted": encrypted,
        "config": config,
    }


@pytest.fixture(scope="module")
def gateway(pki):
    args = ["--ssl-certfile", str(pki["cert"]), "--ssl-keyfile", str(pki["key"])]
    process = TlsGateway(pki["config"], pki["ca"], args).wait_ready()
    yield process
    process.stop()


def test_openai_sdk_chat_over_tls(gateway, pki):
    with httpx.Client(verify=trusting(pki["ca"])) as http_client:
        client = openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, http_client=http_client
        )
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello over tls"}], max_tokens=3
        )
        assert reply.choices[0].message.content == "hello over tls"
        chunks = list(
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "a b"}], max_tokens=2, stream=True
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b"
    assert f"Listening at: https://127.0.0.1:{gateway.port}" in gateway.log()


def test_client_without_the_ca_fails_verification(gateway):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{gateway.url}/health", timeout=5)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=5)
    with pytest.raises(openai.APIConnectionError) as caught:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert "CERTIFICATE_VERIFY_FAILED" in repr(caught.value.__cause__)


def test_plain_http_is_not_served(gateway):
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{gateway.port}/health", timeout=3)


def test_tls_1_2_and_1_3_clients(gateway, pki):
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = trusting(pki["ca"])
        context.minimum_version = context.maximum_version = version
        with httpx.Client(verify=context) as client:
            assert client.get(f"{gateway.url}/health", timeout=5).status_code == 200


def test_environment_variables_and_an_encrypted_key(pki):
    env = {
        "GATEWAY_SSL_CERTFILE": str(pki["cert"]),
        "GATEWAY_SSL_KEYFILE": str(pki["encrypted"]),
        "GATEWAY_SSL_KEYFILE_PASSWORD": PASSWORD,
    }
    process = TlsGateway(pki["config"], pki["ca"], [], env).wait_ready()
    try:
        with httpx.Client(verify=trusting(pki["ca"])) as client:
            body = {"messages": [{"role": "user", "content": "encrypted key"}], "max_tokens": 2}
            reply = client.post(f"{process.url}/endpoints/chat/invocations", json=body, timeout=10)
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"] == "encrypted key"
        assert PASSWORD not in process.log()
        # the key Granian reads, decrypted by the supervisor, is private and on tmpfs
        key_dirs = [path for path in Path("/dev/shm").glob(f"gateway-tls-{process.proc.pid}-*")]
        if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
            assert len(key_dirs) == 1
            assert key_dirs[0].stat().st_mode & 0o777 == 0o700
            assert (key_dirs[0] / "key.pem").stat().st_mode & 0o777 == 0o600
    finally:
        assert process.stop() == 0
    assert not list(Path("/dev/shm").glob(f"gateway-tls-{process.proc.pid}-*"))  # removed at exit


def start(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway", "start", "--config-path", str(config)]
    command += ["--port", str(free_port()), "--workers", "1", *args]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_SSL_")}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**environment, **(env or {})}
    )


def bad_cases(pki: dict[str, Path]) -> list[tuple[list[str], dict[str, str], str]]:
    cert, key, encrypted, missing = (
        str(pki["cert"]),
        str(pki["key"]),
        str(pki["encrypted"]),
        "/nonexistent/x.pem",
    )
    return [
        (
            ["--ssl-certfile", missing, "--ssl-keyfile", key],
            {},
            f"cannot read TLS certificate file (--ssl-certfile) {missing}: no such file or directory",
        ),
        (
            ["--ssl-certfile", cert, "--ssl-keyfile", missing],
            {},
            f"cannot read TLS key file (--ssl-keyfile) {missing}: no such file or directory",
        ),
        (["--ssl-certfile", str(pki["dir"]), "--ssl-keyfile", key], {}, "is a directory"),
        (["--ssl-certfile", cert], {}, "TLS needs both --ssl-certfile and --ssl-keyfile"),
        (["--ssl-keyfile", key], {}, "TLS needs both --ssl-certfile and --ssl-keyfile"),
        ([], {"GATEWAY_SSL_CERTFILE": cert}, "TLS needs both"),
        (
            ["--ssl-keyfile-password", "x"],
            {},
            "--ssl-keyfile-password (GATEWAY_SSL_KEYFILE_PASSWORD) needs --ssl-keyfile",
        ),
        (["--ssl-certfile", key, "--ssl-keyfile", key], {}, "is not a PEM certificate"),
        (["--ssl-certfile", cert, "--ssl-keyfile", cert], {}, "is not a PEM private key"),
        (
            ["--ssl-certfile", str(pki["ca"]), "--ssl-keyfile", key],
            {},
            "the key does not belong to the certificate",
        ),
        (
            ["--ssl-certfile", cert, "--ssl-keyfile", encrypted],
            {},
            "the key is encrypted: give --ssl-keyfile-password",
        ),
        (
            ["--ssl-certfile", cert, "--ssl-keyfile", encrypted, "--ssl-keyfile-password", "wrong-secret"],
            {},
            "wrong --ssl-keyfile-password",
        ),
        (
            [],
            {
                "GATEWAY_SSL_CERTFILE": cert,
                "GATEWAY_SSL_KEYFILE": encrypted,
                "GATEWAY_SSL_KEYFILE_PASSWORD": "wrong-secret",
            },
            "wrong --ssl-keyfile-password",
        ),
    ]


def test_unusable_tls_files_exit_2_with_one_line_before_listening(pki):
    unreadable = pki["dir"] / "unreadable.key"
    unreadable.write_bytes(pki["key"].read_bytes())
    unreadable.chmod(0)
    cases = bad_cases(pki)
    if os.geteuid() != 0:  # root reads anything
        cases.append(
            (["--ssl-certfile", str(pki["cert"]), "--ssl-keyfile", str(unreadable)], {}, "permission denied")
        )
    for args, env, expected in cases:
        result = start(pki["config"], *args, env=env)
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert result.returncode == 2, (args, env, lines)
        assert len(lines) == 1, (args, env, lines)
        assert lines[0].startswith("Error: ") and expected in lines[0], (args, env, lines)
        assert "wrong-secret" not in lines[0]


def test_encrypted_key_is_decrypted_into_a_private_file_for_granian(pki):
    """Granian 2.8's workers cannot read encrypted keys: the supervisor hands them the clear
    key in a private file that lives while serving; stale ones from killed supervisors go."""
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    stale = None
    if base is not None:
        stale = base / f"gateway-tls-{finished.stdout.strip()}-leftover"
        stale.mkdir(mode=0o700)
        (stale / "key.pem").write_text("old")
    checked = tls_files(str(pki["cert"]), str(pki["encrypted"]), PASSWORD)
    assert checked is not None and checked.clear_key is not None
    with granian_files(checked) as served:
        assert served is not None and served.password is None and served.certfile == str(pki["cert"])
        key_path = Path(served.keyfile)
        assert key_path.stat().st_mode & 0o777 == 0o600
        assert key_path.parent.stat().st_mode & 0o777 == 0o700
        assert b"ENCRYPTED" not in key_path.read_bytes()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(served.certfile, served.keyfile)  # the same key, in clear
        if stale is not None:
            assert not stale.exists()
    assert not key_path.parent.exists()


def test_clear_keys_are_given_to_granian_as_they_are(pki):
    for password in (None, "not needed"):  # a password for a clear key is ignored
        checked = tls_files(str(pki["cert"]), str(pki["key"]), password)
        assert checked is not None and checked.clear_key is None
        with granian_files(checked) as served:
            assert served is checked
    with granian_files(None) as served:
        assert served is None

"""Hostile config files (an operator's typo or worse): `gateway validate` and `gateway start`
answer each with the one-line `Error: invalid gateway configuration PATH: ...` and exit 2,
quickly and without a traceback; hot reload logs them and keeps the old config serving."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.configs import openai_config
from tests.integration.test_lifecycle import run_cli

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
ENDPOINT = (
    "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n"
)


def billion_laughs() -> str:
    """Nine levels of nine aliases: 9**9 (387 million) strings from a 600-byte file."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{k}: &a{k} [{','.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 10)]
    return "\n".join(lines) + "\n" + ENDPOINT.replace("config: {}", "name: *a9, config: {}")


def merge_bomb() -> str:
    """Merge keys copy the merged pairs: each level doubles them (2**40)."""
    lines = ["m0: &m0 {a: 1, b: 2}"]
    lines += [f"m{k}: &m{k} {{<<: [*m{k - 1}, *m{k - 1}], k{k}: 1}}" for k in range(1, 41)]
    return "\n".join(lines) + "\n" + ENDPOINT


def write(kind: str, path: Path) -> Path:
    if kind == "not-utf8":
        path.write_bytes(ENDPOINT.encode() + b"# caf\xe9 \xff\n")
    elif kind == "utf16":
        path.write_bytes(ENDPOINT.encode("utf-16"))
    elif kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "50MB":
        entry = ENDPOINT.split("\n", 1)[1]
        with path.open("w") as handle:
            handle.write("endpoints:\n")
            body = "".join(entry.replace("name: a", f"name: a{i}") for i in range(1000))
            while handle.tell() < 50 * 1024 * 1024:
                handle.write(body)
    elif kind == "billion-laughs":
        path.write_text(billion_laughs())
    elif kind == "merge-bomb":
        path.write_text(merge_bomb())
    elif kind == "recursive-alias":
        path.write_text("endpoints: &e\n  - *e\n")
    elif kind == "deep":
        path.write_text("endpoints: " + "[" * 50_000 + "]" * 50_000 + "\n")
    elif kind == "fifo":
        os.mkfifo(path)  # nobody writes it: reading it would block for ever
    elif kind == "nul-bytes":
        path.write_bytes(ENDPOINT.encode() + b"\x00\x00")
    return path


# kind -> what the one line says after "Error: invalid gateway configuration PATH: "
HOSTILE = {
    "not-utf8": f"is not UTF-8 text: byte 0xe9 at offset {len(ENDPOINT) + len('# caf')}",
    "utf16": "is not UTF-8 text: byte 0xff at offset 0",
    "directory": "cannot be read: Is a directory",
    "empty": "the file must be a mapping with an 'endpoints' list",
    "50MB": "over the 1048576-byte limit for a config file (GATEWAY_MAX_CONFIG_BYTES)",
    "billion-laughs": "the YAML document expands to more than 1,000,000 nodes through its aliases",
    "merge-bomb": "the YAML document expands to more than 1,000,000 nodes through its aliases",
    "recursive-alias": "the YAML document contains itself through an alias",
    "deep": "the YAML document nests more than 100 levels deep",
    "fifo": "is not a regular file",
    "nul-bytes": "is not a valid yaml file",
}


def one_line_error(result, path: Path, message: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: invalid gateway configuration {path}: "), lines[0]
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_validate_and_start_refuse_hostile_files_in_one_line(tmp_path, kind):
    path = write(kind, tmp_path / f"{kind}.yaml")
    began = time.monotonic()
    one_line_error(run_cli("validate", str(path), timeout=60), path, HOSTILE[kind])
    assert time.monotonic() - began < 15  # interpreter start-up included; see the unit tests
    port = free_port()
    one_line_error(
        run_cli("start", "--config-path", str(path), "--port", str(port), timeout=60), path, HOSTILE[kind]
    )
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")


def test_config_size_limit_is_a_setting(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(ENDPOINT)
    size = len(ENDPOINT)
    small = run_cli("validate", str(path), env={"GATEWAY_MAX_CONFIG_BYTES": str(size - 1)})
    one_line_error(small, path, f"is {size} bytes, over the {size - 1}-byte limit")
    assert run_cli("validate", str(path), env={"GATEWAY_MAX_CONFIG_BYTES": str(size)}).returncode == 0
    bad = run_cli("validate", str(path), env={"GATEWAY_MAX_CONFIG_BYTES": "lots"})
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "Error: GATEWAY_MAX_CONFIG_BYTES='lots' is not a valid int"
    )


@pytest.mark.parametrize("kind", ["not-utf8", "billion-laughs", "50MB", "empty"])
def test_hot_reload_logs_a_hostile_file_and_keeps_serving(start_gateway, upstream, kind):
    gateway = start_gateway(openai_config(upstream.base))
    path = gateway.config_path
    path.unlink()
    write(kind, path)
    deadline = time.monotonic() + 15
    while "Invalid configuration" not in gateway.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = gateway.log()
    line = next(line for line in log.splitlines() if "Invalid configuration" in line)
    assert HOSTILE[kind] in line, line
    assert "Traceback" not in log and "failed (still serving" not in log
    assert httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT).status_code == 200

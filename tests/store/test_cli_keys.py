"""`gateway keys create | list | show | revoke`, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.store import KeyStore, hash_secret

ROOT = Path(__file__).resolve().parents[2]


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MLFLOW_"))}
    environment.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "gateway", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=environment,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    # a provider secret the admin's shell does not have: `gateway keys` must not need it
    path.write_text(
        f"""
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {{provider: openai, name: gpt-4o-mini, config: {{openai_api_key: $OPENAI_KEY_NOT_SET_HERE}}}}
database_url: sqlite:///{tmp_path}/db/keys.db
"""
    )
    return path


def test_create_list_show_revoke(config: Path, tmp_path: Path) -> None:
    created = gateway(
        "create",
        "--config-path",
        str(config),
        "--name",
        "alice",
        "--team",
        "red",
        "--endpoint",
        "chat*",
        "--endpoint",
        "embed",
        "--expires-in",
        "30d",
        "--limit",
        '{"calls": 100, "renewal_period": "minute"}',
        "--metadata",
        '{"ticket": "OPS-7"}',
    )
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    secret = record["key"]
    assert secret.startswith("gw-") and record["prefix"] == secret[:12]
    assert record["name"] == "alice" and record["team"] == "red"
    assert record["endpoints"] == ["chat*", "embed"]
    assert record["limit"] == {"calls": 100, "renewal_period": "minute"}
    assert record["metadata"] == {"ticket": "OPS-7"}
    expires = datetime.fromisoformat(record["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert "not stored and cannot be shown again" in created.stderr
    assert "Note:" not in created.stderr  # the config names its database

    # the gateway's own store sees it, under the secret's hash
    store = KeyStore(f"sqlite:///{tmp_path}/db/keys.db")
    stored = store.get(record["id"])
    assert stored is not None and stored.key_hash == hash_secret(secret)

    listed = gateway("list", "--config-path", str(config))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "PREFIX", "NAME", "TEAM", "STATUS", "EXPIRES_AT"]
    assert lines[1].split()[:5] == [record["id"], record["prefix"], "alice", "red", "active"]
    assert secret not in listed.stdout

    as_json = gateway("list", "--config-path", str(config), "--json")
    keys = json.loads(as_json.stdout)["keys"]
    assert [key["id"] for key in keys] == [record["id"]] and "key" not in keys[0]

    shown = gateway("show", record["id"], "--config-path", str(config))
    assert shown.returncode == 0
    assert json.loads(shown.stdout) == {k: v for k, v in record.items() if k != "key"}

    revoked = gateway("revoke", record["id"], "--config-path", str(config))
    assert revoked.returncode == 0
    assert json.loads(revoked.stdout)["status"] == "revoked"
    assert gateway("revoke", record["id"], "--config-path", str(config)).returncode == 0  # idempotent

    assert len(gateway("list", "--config-path", str(config)).stdout.splitlines()) == 1  # header only
    everything = gateway("list", "--config-path", str(config), "--all").stdout.splitlines()
    assert everything[1].split()[4] == "revoked"
    for output in (listed, as_json, shown, revoked):
        assert secret[3:] not in output.stdout + output.stderr


def test_config_path_from_the_environment_and_expires_at(config: Path) -> None:
    created = gateway(
        "create",
        "--name",
        "bob",
        "--expires-at",
        "2099-01-01T00:00:00Z",
        env={"MLFLOW_GATEWAY_CONFIG": str(config)},
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["expires_at"] == "2099-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["create", "--name", "x", "--limit", '{"calls": 0, "renewal_period": "minute"}'],
            "Error: limit: Failed to parse",
        ),
        (["create", "--name", "x", "--limit", "{not json"], "Error: --limit: not valid JSON"),
        (["create", "--name", "x", "--metadata", "[1]"], "Error: metadata: must be a JSON object"),
        (["create", "--name", "x", "--expires-in", "soon"], "Error: 'soon' is not a duration"),
        (
            ["create", "--name", "x", "--expires-at", "2001-01-01T00:00:00Z"],
            "Error: --expires-at: must be in the future",
        ),
        (
            ["create", "--name", "x", "--expires-at", "tomorrow"],
            "Error: --expires-at: 'tomorrow' is not an RFC 3339",
        ),
        (["create", "--name", "", "--team", "t"], "Error: name: must be a string"),
        (["show", "key_0123456789abcdef0123"], "Error: Key 'key_0123456789abcdef0123' not found"),
        (["revoke", "key_0123456789abcdef0123"], "Error: Key 'key_0123456789abcdef0123' not found"),
    ],
)
def test_errors_are_one_line_and_exit_2(config: Path, args: list[str], message: str) -> None:
    result = gateway(*args, "--config-path", str(config))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_config_problems(tmp_path: Path) -> None:
    missing = gateway("list", "--config-path", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    no_path = gateway("list")
    assert no_path.returncode == 2 and "--config-path" in no_path.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints: []\ndatabase_url: mysql://u:hunter2-password@db/keys\n")
    result = gateway("list", "--config-path", str(bad))
    assert result.returncode == 2 and "database_url: use sqlite" in result.stderr
    assert "hunter2" not in result.stderr
    unreachable = tmp_path / "unreachable.yaml"
    unreachable.write_text("endpoints: []\ndatabase_url: postgresql://u:hunter2-password@127.0.0.1:1/keys\n")
    result = gateway("list", "--config-path", str(unreachable))
    assert result.returncode == 2 and result.stderr.startswith(
        "Error: key database (postgresql u@127.0.0.1:1/keys)"
    )
    assert "hunter2" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_default_database_when_the_config_names_none(tmp_path: Path) -> None:
    path = tmp_path / "open.yaml"
    path.write_text("endpoints: []\n")
    state = tmp_path / "state"
    result = gateway(
        "create", "--config-path", str(path), "--name", "x", env={"GATEWAY_STATE_DIR": str(state)}
    )
    assert result.returncode == 0, result.stderr
    assert f"sets no database_url; using sqlite {state}/gateway.db" in result.stderr
    assert (state / "gateway.db").exists()
    # GATEWAY_DATABASE_URL wins over the default, as for `gateway start`
    other = tmp_path / "other.db"
    result = gateway("list", "--config-path", str(path), env={"GATEWAY_DATABASE_URL": f"sqlite:///{other}"})
    assert result.returncode == 0 and other.exists() and "Note:" not in result.stderr

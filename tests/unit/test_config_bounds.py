"""Bounds on what a config file may cost (size, YAML alias expansion, nesting), the last good
config snapshot, a worker's first config, and the supervisor's crash-loop rule."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time

import pytest

from gateway.config import MAX_YAML_NODES, load_config, parse_config, read_config_text
from gateway.control import snapshot
from gateway.control.reload import file_signature, initial_config
from gateway.errors import ConfigError
from gateway.server.run import CRASH_LIMIT, CRASH_WINDOW_SECONDS, CrashLoop
from gateway.settings import reload_settings

ENDPOINT = (
    "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, config: {}}\n"
)


@pytest.fixture
def setting(monkeypatch):
    def set_variable(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        reload_settings()

    yield set_variable
    monkeypatch.undo()
    reload_settings()


def laughs(levels: int, width: int = 9) -> str:
    lines = [f"a0: &a0 [{','.join(['lol'] * width)}]"]
    lines += [f"a{k}: &a{k} [{','.join([f'*a{k - 1}'] * width)}]" for k in range(1, levels + 1)]
    return "\n".join(lines) + "\n" + ENDPOINT.replace("config: {}", f"name: *a{levels}, config: {{}}")


def timed(text: str) -> tuple[float, BaseException | None]:
    began = time.perf_counter()
    try:
        parse_config(text)
    except ConfigError as exc:
        return time.perf_counter() - began, exc
    return time.perf_counter() - began, None


def test_billion_laughs_is_refused_in_milliseconds():
    took, error = timed(laughs(9))  # 9**9 = 387,420,489 strings once expanded
    assert isinstance(error, ConfigError) and "expands to more than 1,000,000 nodes" in str(error)
    assert took < 0.5, took


def test_merge_key_bomb_is_refused_in_milliseconds():
    lines = ["m0: &m0 {a: 1, b: 2}"]
    lines += [f"m{k}: &m{k} {{<<: [*m{k - 1}, *m{k - 1}], k{k}: 1}}" for k in range(1, 60)]
    took, error = timed("\n".join(lines) + "\n" + ENDPOINT)
    assert isinstance(error, ConfigError) and "expands to more than" in str(error)
    assert took < 0.5, took


def test_aliases_within_the_bound_load_and_stay_cheap():
    # an ordinary use: one anchored provider config shared by many endpoints
    shared = "x-openai: &openai {openai_api_key: k, openai_api_base: 'http://h/v1'}\nendpoints:\n"
    shared += "".join(
        f"  - name: e{i}\n    endpoint_type: llm/v1/chat\n    model: {{provider: openai, name: m, config: *openai}}\n"
        for i in range(200)
    )
    assert len(parse_config(shared).endpoints) == 200
    # just under the bound (about 900,000 nodes), walked whole by str(): bounded time and memory
    under = laughs(4, width=10).replace("name: *a4", "name: [" + ",".join(["*a4"] * 7) + "]")
    began = time.perf_counter()
    config = parse_config(under)
    assert len(str(config.endpoints[0].model_name)) > 5_000_000
    assert time.perf_counter() - began < 2
    assert MAX_YAML_NODES == 1_000_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("endpoints: &e\n  - *e\n", "contains itself through an alias"),
        ("x: &m {a: *m}\n" + ENDPOINT, "contains itself through an alias"),
        ("endpoints: " + "[" * 101 + "]" * 101 + "\n", "nests more than 100 levels deep"),
        ("endpoints: " + "[" * 5000 + "]" * 5000 + "\n", "nests more than 100 levels deep"),
        ("endpoints:\n" + "- " * 3000 + "x\n", "nests more than 100 levels deep"),
    ],
)
def test_recursive_and_deep_documents_are_refused(text, message):
    took, error = timed(text)
    assert isinstance(error, ConfigError) and message in str(error), error
    assert took < 5, took


def test_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(ENDPOINT.encode() + b"# \xc3\x28")
    with pytest.raises(
        ConfigError, match=rf"{path} is not UTF-8 text: byte 0xc3 at offset {len(ENDPOINT) + 2}$"
    ):
        load_config(str(path))
    path.write_bytes(b"\xef\xbb\xbf" + ENDPOINT.encode())  # a UTF-8 BOM is fine, as before
    assert len(load_config(str(path)).endpoints) == 1


def test_fifo_and_devices_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    outcome: list[Exception] = []

    def read() -> None:
        try:
            read_config_text(str(fifo))
        except ConfigError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert "is not a regular file" in str(outcome[0])
    with pytest.raises(ConfigError, match="/dev/zero is not a regular file"):
        read_config_text("/dev/zero")


def test_size_limit_is_checked_before_reading(tmp_path, setting):
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:  # sparse: 50 MB that would take minutes to parse
        handle.truncate(50 * 1024 * 1024)
    with pytest.raises(ConfigError, match=r"is 52428800 bytes, over the 1048576-byte limit"):
        read_config_text(str(path))
    setting("GATEWAY_MAX_CONFIG_BYTES", "64")
    small = tmp_path / "small.yaml"
    small.write_text("x" * 65)
    with pytest.raises(ConfigError, match="over the 64-byte limit"):
        read_config_text(str(small))
    small.write_text("x" * 64)
    assert read_config_text(str(small)) == "x" * 64


# -- the last good config ---------------------------------------------------------------------
def test_snapshot_is_private_atomic_and_removed(monkeypatch):
    monkeypatch.delenv(snapshot.SNAPSHOT_ENV, raising=False)
    with snapshot.config_snapshot(ENDPOINT) as path:
        assert path is not None and os.environ[snapshot.SNAPSHOT_ENV] == path
        assert os.path.basename(os.path.dirname(path)).startswith(f"{snapshot.DIR_PREFIX}{os.getpid()}-")
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert snapshot.read_snapshot(path) == ENDPOINT
        snapshot.remember("endpoints: []\n")
        assert snapshot.read_snapshot(path) == "endpoints: []\n"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        before = os.stat(path).st_ino
        snapshot.remember("endpoints: []\n")  # unchanged: not rewritten
        assert os.stat(path).st_ino == before
        assert os.listdir(os.path.dirname(path)) == [snapshot.FILE_NAME]  # no temporary left
    assert not os.path.exists(os.path.dirname(path))
    assert snapshot.SNAPSHOT_ENV not in os.environ


def test_stale_snapshot_of_a_killed_supervisor_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "private_base_directory", lambda *preferred: tmp_path)
    dead = tmp_path / f"{snapshot.DIR_PREFIX}999999999-abc"
    dead.mkdir()
    (dead / snapshot.FILE_NAME).write_text("secret")
    alive = tmp_path / f"{snapshot.DIR_PREFIX}{os.getppid()}-abc"
    alive.mkdir()
    with snapshot.config_snapshot(ENDPOINT):
        pass
    assert not dead.exists() and alive.exists()


def test_initial_config_falls_back_to_the_snapshot_once(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(snapshot.SNAPSHOT_ENV, raising=False)
    live = tmp_path / "c.yaml"
    live.write_text("endpoints: [\n")
    with pytest.raises(ConfigError, match="is not a valid yaml file"):
        initial_config(str(live))  # no snapshot (an app built outside `gateway start`)
    with snapshot.config_snapshot(ENDPOINT), caplog.at_level(logging.WARNING, "gateway.reload"):
        config, signature = initial_config(str(live))
        assert [e.name for e in config.endpoints] == ["a"]
        assert signature == file_signature(str(live))  # so hot reload waits for the next edit
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert f"cannot load {live} (The file at {live} is not a valid yaml file)" in warnings[0]
        assert "starting from the last good configuration" in warnings[0]
        live.unlink()
        config, signature = initial_config(str(live))
        assert signature is None and len(config.endpoints) == 1


# -- crash loops ------------------------------------------------------------------------------
def test_crash_loop_rule():
    crashes = CrashLoop()
    assert (CRASH_LIMIT, CRASH_WINDOW_SECONDS) == (5, 60.0)
    assert [crashes.crashed(0, float(t)) for t in range(5)] == [None] * 5
    assert crashes.crashed(1, 5.0) is None  # another worker's crash is its own
    assert crashes.crashed(0, 5.0) == 6
    spaced = CrashLoop()
    assert all(spaced.crashed(0, t * 13.0) is None for t in range(100))  # 5 a minute, for ever

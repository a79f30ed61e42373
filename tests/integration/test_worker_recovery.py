"""A worker that dies is respawned and the gateway keeps serving, whatever state the config file
is in: a respawn starts from the last good config when the file is invalid or deleted, one crash
is never a crash loop, and a real crash loop still stops the gateway. Plus the drain deadline.

Real processes and real signals: workers are found by the PIDs Granian logs."""

from __future__ import annotations

import os
import re
import signal
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.control.snapshot import DIR_PREFIX, FILE_NAME
from gateway.server.process import private_base_directory
from tests.conftest import GatewayProcess
from tests.integration.configs import openai_config, openai_endpoint

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
FALLBACK = "starting from the last good configuration"


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def worker_pids(gateway: GatewayProcess) -> dict[int, int]:
    """Worker number -> PID of its latest incarnation."""
    return {
        int(n): int(pid) for n, pid in re.findall(r"Spawning worker-(\d+) with PID: (\d+)", gateway.log())
    }


def started(gateway: GatewayProcess, number: int) -> int:
    return gateway.log().count(f"Started worker-{number}\n")


def kill_worker(gateway: GatewayProcess, number: int, wait_started: bool = True) -> int:
    """SIGKILL worker `number`; returns once its replacement is spawned (and, by default, has
    built its app and started serving)."""
    old = worker_pids(gateway)[number]
    before = started(gateway, number)
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: worker_pids(gateway).get(number) != old), gateway.log()
    if wait_started:
        assert wait_for(lambda: started(gateway, number) > before or gateway.proc.poll() is not None)
    return worker_pids(gateway)[number]


def all_started(gateway: GatewayProcess, workers: int) -> GatewayProcess:
    """The gateway answers once one worker does: wait for the others too."""
    assert wait_for(lambda: all(started(gateway, n) for n in range(1, workers + 1))), gateway.log()
    return gateway


def every_worker_sees(gateway: GatewayProcess, name: str) -> bool:
    # fresh connections, spread over the workers
    return all(httpx.get(f"{gateway.url}/api/2.0/endpoints/{name}").status_code == 200 for _ in range(12))


def reloads(gateway: GatewayProcess) -> int:
    return gateway.log().count("configuration reloaded from")


def snapshot_of(gateway: GatewayProcess) -> Path:
    found = list(private_base_directory().glob(f"{DIR_PREFIX}{gateway.proc.pid}-*/{FILE_NAME}"))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("damage", ["invalid", "deleted", "not-utf8"])
def test_killed_worker_respawns_from_last_good_config(start_gateway, upstream, damage):
    """Before: the respawned worker could not load the file, Granian saw it die within 5.5 s of
    its respawn ("Worker crash loop detected, exiting") and stopped the healthy worker too."""
    gateway = all_started(start_gateway(openai_config(upstream.base), workers=2), 2)
    path = gateway.config_path
    if damage == "invalid":
        path.write_text("endpoints: [\n")
    elif damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"endpoints: []\n# caf\xe9\n")
    time.sleep(0.5)  # both workers have noticed (and kept serving the old config)
    kill_worker(gateway, 1)
    time.sleep(1.0)
    assert gateway.proc.poll() is None, gateway.log()
    log = gateway.log()
    assert "crash loop" not in log
    assert log.count(FALLBACK) == 1, log
    reason = {
        "invalid": "is not a valid yaml file",
        "deleted": "does not exist",
        "not-utf8": "is not UTF-8 text",
    }
    warning = next(line for line in log.splitlines() if FALLBACK in line)
    assert f"cannot load {path} (" in warning and reason[damage] in warning, warning
    for _ in range(10):  # both workers serve, the respawned one from the snapshot
        assert httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT).status_code == 200

    # a fixed file is picked up by every worker's hot reload, the respawned one included
    before = reloads(gateway)
    added = openai_endpoint("added", "chat", "gpt-4o-mini", upstream.base)
    path.write_text(openai_config(upstream.base, added))
    assert wait_for(lambda: reloads(gateway) >= before + 2), gateway.log()
    assert every_worker_sees(gateway, "added")
    assert httpx.post(f"{gateway.url}/endpoints/added/invocations", json=CHAT).status_code == 200
    assert gateway.stop() == 0


def test_respawn_starts_from_the_newest_good_config(start_gateway, upstream):
    """Hot reload keeps the snapshot current; an invalid file never overwrites it."""
    gateway = all_started(start_gateway(openai_config(upstream.base), workers=2), 2)
    snapshot = snapshot_of(gateway)
    assert snapshot.read_text() == gateway.config_path.read_text()
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert stat.S_IMODE(snapshot.parent.stat().st_mode) == 0o700

    newer = openai_config(upstream.base, openai_endpoint("newer", "chat", "gpt-4o-mini", upstream.base))
    before = reloads(gateway)
    gateway.config_path.write_text(newer)
    assert wait_for(lambda: reloads(gateway) >= before + 2), gateway.log()
    assert snapshot.read_text() == newer

    gateway.config_path.write_text("endpoints:\n  - name: broken\n    endpoint_type: llm/v1/chat\n")
    assert wait_for(lambda: gateway.log().count("Invalid configuration") >= 2), gateway.log()
    assert snapshot.read_text() == newer
    kill_worker(gateway, 1)
    kill_worker(gateway, 2)  # every worker now started from the snapshot
    assert gateway.log().count(FALLBACK) == 2
    assert every_worker_sees(gateway, "newer")
    assert httpx.get(f"{gateway.url}/api/2.0/endpoints/broken").status_code == 404
    assert httpx.post(f"{gateway.url}/endpoints/newer/invocations", json=CHAT).status_code == 200

    supervisor = gateway.proc.pid
    assert gateway.stop() == 0
    assert not list(private_base_directory().glob(f"{DIR_PREFIX}{supervisor}-*")), "snapshot left behind"


def test_snapshot_resolves_secrets_as_the_live_file(start_gateway, upstream, tmp_path):
    """`$VAR` keys and relative key-file paths in the snapshot resolve exactly as in the file."""
    key_file = tmp_path / "relative.key"
    key_file.write_text("sk-from-relative-file\n")
    relative = os.path.relpath(key_file)  # the gateway runs in this process's directory
    assert not os.path.isabs(relative)
    config = (
        "endpoints:"
        + openai_endpoint("by-var", "chat", "gpt-4o-mini", upstream.base).replace(
            "sk-test-secret-key", "$RECOVERY_TEST_KEY"
        )
        + openai_endpoint("by-file", "chat", "gpt-4o-mini", upstream.base).replace(
            "sk-test-secret-key", relative
        )
    )
    gateway = all_started(start_gateway(config, workers=2, env={"RECOVERY_TEST_KEY": "sk-from-variable"}), 2)
    gateway.config_path.unlink()
    time.sleep(0.5)
    kill_worker(gateway, 1)
    kill_worker(gateway, 2)
    assert gateway.log().count(FALLBACK) == 2, gateway.log()
    for _ in range(6):
        assert httpx.post(f"{gateway.url}/endpoints/by-var/invocations", json=CHAT).status_code == 200
        assert upstream.last().headers["Authorization"] == "Bearer sk-from-variable"
        assert httpx.post(f"{gateway.url}/endpoints/by-file/invocations", json=CHAT).status_code == 200
        assert upstream.last().headers["Authorization"] == "Bearer sk-from-relative-file"


def test_a_crash_soon_after_a_respawn_is_not_a_crash_loop(start_gateway, upstream):
    """Granian's rule: a worker dying within 5.5 s of a respawn of its slot stops the whole
    gateway, so a second kill -9 of one worker (or one crash after a SIGHUP) ended it."""
    gateway = all_started(start_gateway(openai_config(upstream.base), workers=2), 2)
    kill_worker(gateway, 1)
    respawned = time.monotonic()
    kill_worker(gateway, 1)
    assert time.monotonic() - respawned < 5.5
    assert gateway.proc.poll() is None, gateway.log()
    assert "crash loop" not in gateway.log()
    for _ in range(10):
        assert httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT).status_code == 200
    assert gateway.stop() == 0


def test_sighup_then_one_crash_keeps_serving(start_gateway, upstream):
    gateway = all_started(start_gateway(openai_config(upstream.base), workers=1), 1)
    before = started(gateway, 1)
    gateway.proc.send_signal(signal.SIGHUP)  # Granian respawns every worker
    assert wait_for(lambda: started(gateway, 1) > before and "Stopped old worker-1" in gateway.log())
    kill_worker(gateway, 1)
    assert gateway.proc.poll() is None, gateway.log()
    assert httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT).status_code == 200


def test_a_real_crash_loop_still_stops_the_gateway(start_gateway, upstream):
    gateway = all_started(
        start_gateway(openai_config(upstream.base), workers=2, extra_args=["--drain-seconds", "2"]), 2
    )
    for _ in range(5):
        kill_worker(gateway, 1, wait_started=False)
    assert gateway.proc.poll() is None, gateway.log()
    os.kill(worker_pids(gateway)[1], signal.SIGKILL)  # the sixth crash within a minute
    assert gateway.proc.wait(20) == 1
    assert "Worker crash loop detected: worker-1 crashed 6 times within 60 s, exiting" in gateway.log()


def test_drain_seconds_bounds_a_stopping_worker(start_gateway, upstream):
    slow = openai_endpoint("slow", "chat", "slow-8000", upstream.base)
    gateway = start_gateway(
        openai_config(upstream.base, slow), workers=1, extra_args=["--drain-seconds", "1"]
    )
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["status"] = httpx.post(
                f"{gateway.url}/endpoints/slow/invocations", json=CHAT, timeout=30
            ).status_code
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)
    stopped = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    gateway.proc.wait(20)
    took = time.monotonic() - stopped
    caller.join(10)
    assert 0.8 < took < 4, took  # the 8 s answer was not waited for
    assert "status" not in outcome, outcome
    assert "Killing worker-1 after it refused to gracefully stop" in gateway.log()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--drain-seconds", "-1"], {}, "argument --drain-seconds: '-1' is not a number of seconds >= 0"),
        (["--drain-seconds", "soon"], {}, "argument --drain-seconds: 'soon' is not a number of seconds >= 0"),
        ([], {"GATEWAY_DRAIN_SECONDS": "abc"}, "Error: GATEWAY_DRAIN_SECONDS='abc' is not a valid float"),
        ([], {"GATEWAY_DRAIN_SECONDS": "inf"}, "Error: GATEWAY_DRAIN_SECONDS must be a finite number"),
    ],
)
def test_invalid_drain_seconds_are_refused(tmp_path, args, env, message):
    from tests.integration.test_lifecycle import run_cli

    path = tmp_path / "c.yaml"
    path.write_text("endpoints: []\n")
    result = run_cli("start", "--config-path", str(path), "--port", "1", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr

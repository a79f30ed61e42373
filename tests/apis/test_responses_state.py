"""The conversation states behind `previous_response_id` on translated providers: bounded in
memory (size cap, TTL, least recently used dropped first), and with a database configured kept
there, so every worker, and a restarted gateway, continues a conversation."""

from __future__ import annotations

import asyncio

import httpx

from gateway.apis.responses import state
from gateway.apis.responses.state import ResponseState, ResponseStates
from tests.conftest import launch
from tests.support.api_gateway import api_config


def test_memory_is_bounded_least_recently_used_first(monkeypatch):
    monkeypatch.setattr(state, "MAX_MEMORY_BYTES", 1000)
    states = ResponseStates()

    async def scenario() -> None:
        for number in range(10):
            await states.remember(f"resp_{number}", ResponseState("chat", [{"text": "x" * 150}]))
            await states.find("resp_0", None)  # used again and again: kept
        assert states.bytes <= 1000
        assert await states.find("resp_0", None) is not None and await states.find("resp_9", None) is not None
        assert await states.find("resp_1", None) is None  # the least recently used went first

    asyncio.run(scenario())


def test_entries_expire(monkeypatch):
    states = ResponseStates()

    async def scenario() -> None:
        await states.remember("resp_old", ResponseState("chat", [], expires_at=1.0))
        assert await states.find("resp_old", None) is None
        assert states.bytes == 0

    asyncio.run(scenario())


def test_a_conversation_over_the_cap_is_not_kept(monkeypatch):
    monkeypatch.setattr(state, "MAX_CONVERSATION_BYTES", 500)
    states = ResponseStates()

    async def scenario() -> None:
        await states.remember("resp_big", ResponseState("chat", [{"text": "x" * 1000}]))
        kept = await states.find("resp_big", None)
        assert kept is not None and kept.items == [state.TOO_LARGE] and kept.size < 500

    asyncio.run(scenario())


def ask(url: str, text: str, previous: str | None = None) -> httpx.Response:
    body = {"model": "claude", "input": text, **({"previous_response_id": previous} if previous else {})}
    with httpx.Client(timeout=10) as client:  # a new connection each time: any worker may answer
        return client.post(f"{url}/v1/responses", json=body)


def test_database_keeps_conversations_across_workers_and_restarts(upstreams, tmp_path):
    config = api_config(*upstreams, extra=f"database_url: sqlite:///{tmp_path}/gateway.db\n")
    gateway = launch(tmp_path, config, workers=2)
    try:
        previous = None
        for turn in range(8):
            answer = ask(gateway.url, f"turn {turn}", previous)
            assert answer.status_code == 200, answer.text
            previous = answer.json()["id"]
        sent = upstreams[1].requests[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == [f"turn {n}" for n in range(8)]
    finally:
        gateway.stop()
    restarted = launch(tmp_path, config)
    try:
        answer = ask(restarted.url, "after the restart", previous)
        assert answer.status_code == 200, answer.text
        assert len(upstreams[1].requests[-1].body["messages"]) == 17
        fetched = httpx.get(f"{restarted.url}/v1/responses/{previous}", timeout=10)
        assert fetched.status_code == 200 and fetched.json()["id"] == previous
    finally:
        restarted.stop()


def test_without_a_database_a_conversation_lives_in_the_worker(upstreams, tmp_path):
    gateway = launch(tmp_path, api_config(*upstreams))
    try:
        first = ask(gateway.url, "hello").json()["id"]
        assert ask(gateway.url, "again", first).status_code == 200
    finally:
        gateway.stop()
    restarted = launch(tmp_path, api_config(*upstreams))
    try:
        missing = ask(restarted.url, "after the restart", first)
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == f"Previous response with id '{first}' not found."
    finally:
        restarted.stop()

"""Kept responses belong to the consumer that created them: another gateway key can neither read,
delete nor continue them (404, as for an id that does not exist). A passthrough stream's response
is kept as soon as the upstream names it, so a GET during the stream finds it; a failure to keep
it never breaks the answer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from gateway.apis.responses.state import ResponseState, ResponseStates
from tests.providers.anthropic_upstream import AnthropicUpstream
from tests.providers.gemini_upstream import GoogleUpstream
from tests.support.api_gateway import api_config, openai_endpoint, running_gateway, started
from tests.support.responses_upstream import USAGE, ResponsesUpstream, response_object, stream_events

ADMIN = "admin-secret-for-the-owner-tests"


class HoldingUpstream(ResponsesUpstream):
    """`model: held` streams `response.created`, then waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("model") != "held":
            return await super().create(request)
        await self.record(request)
        response_id = f"resp_held{next(self.ids)}"
        output = self.output(body, response_id)
        final = self.kept[response_id] = response_object(response_id, body, "completed", output, USAGE)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for number, event in enumerate(stream_events(response_id, body, output, final, False)):
            await response.write(
                b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
            )
            while number == 0 and not self.released.is_set():
                await asyncio.sleep(0.02)
        await response.write_eof()
        return response


@pytest.fixture(scope="module")
def upstreams():
    yield from started(HoldingUpstream(), AnthropicUpstream(), GoogleUpstream())


@pytest.fixture(scope="module")
def gateway(upstreams, tmp_path_factory):
    directory = tmp_path_factory.mktemp("response-owners")
    extra = (
        f"database_url: sqlite:///{directory}/gateway.db\nauth:\n  admin_key: {ADMIN}\n  require_keys: true\n"
    )
    held = openai_endpoint("gpt-held", "held", upstreams[0].base)
    yield from running_gateway(directory, api_config(*upstreams, extra=extra, more=[held]))


def new_key(gateway: Any, name: str) -> str:
    created = httpx.post(
        f"{gateway.url}/admin/v1/keys", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@pytest.mark.parametrize("endpoint", ["claude", "gpt"])  # translated (kept here), passthrough (upstream)
def test_another_key_cannot_read_delete_or_continue_a_response(gateway, endpoint):
    owner = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=new_key(gateway, "owner"), max_retries=0)
    other = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=new_key(gateway, "other"), max_retries=0)
    created = owner.responses.create(model=endpoint, input="hi")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=endpoint, input="and then?", previous_response_id=created.id)
    assert owner.responses.retrieve(created.id).id == created.id  # still there, for its owner
    assert owner.responses.create(model=endpoint, input="and then?", previous_response_id=created.id).id


def test_a_streamed_response_is_kept_before_the_stream_ends(gateway, upstreams):
    key = new_key(gateway, "streamer")
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "gpt-held", "input": "hi", "stream": True}
    try:
        with httpx.stream(
            "POST", f"{gateway.url}/v1/responses", json=body, headers=headers, timeout=10
        ) as answer:
            lines = answer.iter_lines()
            created = next(orjson.loads(line[6:]) for line in lines if line.startswith("data: "))
            assert created["type"] == "response.created"
            response_id = created["response"]["id"]
            during = httpx.get(f"{gateway.url}/v1/responses/{response_id}", headers=headers, timeout=10)
            assert during.status_code == 200, during.text  # the stream is still held upstream
            upstreams[0].released.set()
            assert any("response.completed" in line for line in lines)
    finally:
        upstreams[0].released.set()


def test_a_state_that_cannot_be_written_does_not_break_the_answer(monkeypatch, caplog):
    states = ResponseStates("sqlite:///nowhere.db")

    def broken(*args: Any) -> None:
        raise RuntimeError("postgresql://user:secret@db/gateway is gone")

    monkeypatch.setattr(states, "_insert", broken)
    asyncio.run(states.remember("resp_1", ResponseState("gpt", owner="key:1")))
    assert asyncio.run(states.find("resp_1", "key:1")) is not None  # kept in this worker's memory
    assert "RuntimeError" in caplog.text and "secret" not in caplog.text

"""What Gemini-native calls put in the usage records: a countTokens call generates nothing (no
tokens, no cost), and a streamed JSON array (no `alt=sse`) of any size is billed on the usage
Google reported in its last item, not on an estimate."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.support.api_gateway import api_config, gemini_endpoint, running_gateway, started, usage_rows
from tests.support.recording import RecordingUpstream

COLUMNS = "path, endpoint, stream, status, prompt_tokens, completion_tokens, estimated, cost_nano_usd"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
PIECES, PIECE_CHARS = 24, 60_000  # 1.4 MB of text: over the 1 MB the array used to be read whole
ARRAY_USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 360_000, "totalTokenCount": 360_005}


class JsonArrayUpstream(RecordingUpstream):
    """Gemini's streamGenerateContent without `alt=sse`: one JSON array, sent item by item."""

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{target}", self.stream)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for number in range(PIECES):
            item: dict[str, Any] = {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "x" * PIECE_CHARS}]}}]
            }
            if number == PIECES - 1:
                item["usageMetadata"] = ARRAY_USAGE
            await response.write((b"[" if number == 0 else b",\r\n") + orjson.dumps(item))
        await response.write(b"]")
        await response.write_eof()
        return response


@pytest.fixture(scope="module")
def arrays():
    yield from started(JsonArrayUpstream())


@pytest.fixture(scope="module")
def gateway(upstreams, arrays, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gemini-billing")
    url = f"sqlite:///{directory}/gateway.db"
    more = [gemini_endpoint("gem-array", "gemini-2.0-flash", f"{arrays[0].url}/v1beta/models")]
    for process in running_gateway(
        directory, api_config(*upstreams, extra=f"database_url: {url}\n", more=more)
    ):
        yield process, url


def test_count_tokens_is_not_billed_as_a_generation(gateway):
    process, url = gateway
    for endpoint in ("gem", "gpt"):  # Google's own count, the gateway's estimate
        counted = httpx.post(f"{process.url}/v1beta/models/{endpoint}:countTokens", json=BODY, timeout=10)
        assert counted.status_code == 200, counted.text
    found = [row for row in usage_rows(url, COLUMNS, 2) if row[0].endswith(":countTokens")]
    assert [(row[1], row[4] or 0, row[5] or 0, row[7] or 0) for row in found] == [
        ("gem", 0, 0, 0),
        ("gpt", 0, 0, 0),
    ]


def test_a_large_json_array_stream_is_billed_on_the_reported_usage(gateway):
    process, url = gateway
    with httpx.stream(
        "POST", f"{process.url}/v1beta/models/gem-array:streamGenerateContent", json=BODY, timeout=30
    ) as answer:
        relayed = orjson.loads(answer.read())
    assert len(relayed) == PIECES and relayed[-1]["usageMetadata"] == ARRAY_USAGE
    found = [row for row in usage_rows(url, COLUMNS, 3) if row[1] == "gem-array"]
    path = "/v1beta/models/gem-array:streamGenerateContent"
    assert found[-1][:7] == (path, "gem-array", True, 200, 5, 360_000, False)

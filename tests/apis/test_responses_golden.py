"""Golden pairs: a Responses request in the public shape Codex sends on a follow-up turn
(`instructions`, developer and user messages, an encrypted reasoning item, a function call and
its output, function / custom / built-in tools, `reasoning`, `include`, `store: false`,
`parallel_tool_calls: false`, `prompt_cache_key`, `text.verbosity`, streamed), replayed against
an OpenAI endpoint (the upstream must receive it unchanged but for `model`) and against
Anthropic and Gemini endpoints (the upstream must receive the recorded translation; the client
gets a stream the openai SDK's models accept)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import orjson
import pytest
from openai.types.responses import Response

GOLDEN = Path(__file__).with_name("golden")
CODEX = json.loads((GOLDEN / "codex_request.json").read_text())


def replay(gateway, model: str) -> list[dict]:
    with httpx.stream(
        "POST", f"{gateway.url}/v1/responses", json={**CODEX, "model": model}, timeout=20
    ) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(answer.iter_bytes())
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def test_codex_turn_passes_through_to_openai_unchanged(gateway, upstreams):
    events = replay(gateway, "gpt")
    sent = upstreams[0].requests[-1]
    assert sent.body == {**CODEX, "model": "gpt-5"}
    assert list(sent.body) == list(CODEX)  # key order kept too
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["name"] == "shell"  # the upstream's call of the first tool


@pytest.mark.parametrize(
    ("model", "upstream_index", "golden"),
    [("claude-tools", 1, "codex_request.anthropic.json"), ("gem-tools", 2, "codex_request.gemini.json")],
)
def test_codex_turn_translates_to_the_recorded_provider_request(
    gateway, upstreams, model, upstream_index, golden
):
    events = replay(gateway, model)
    expected = json.loads((GOLDEN / golden).read_text())
    if upstream_index == 1:
        expected["model"] = model
    assert upstreams[upstream_index].requests[-1].body == expected
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    final = events[-1]
    assert final["type"] == "response.completed"
    response = Response.model_validate(final["response"])
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and all(orjson.loads(call.arguments) for call in calls)
    assert response.usage is not None and response.usage.total_tokens > 0
    # the request's settings are echoed, as OpenAI echoes them
    assert response.parallel_tool_calls is False and response.store is False
    assert response.reasoning is not None and response.reasoning.effort == "medium"

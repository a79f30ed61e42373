"""Config pieces of the routing tests."""

from __future__ import annotations

from tests.support.faulty_upstream import FaultyUpstream


def endpoint(faulty: FaultyUpstream, name: str, extra: str = "") -> str:
    """One OpenAI chat endpoint on the faulty upstream's `name` destination; `extra` is YAML
    indented under the endpoint (retries:, timeouts:, circuit_breaker:, health_check:)."""
    lines = [
        f"  - name: {name}",
        "    endpoint_type: llm/v1/chat",
        "    model:",
        "      provider: openai",
        "      name: gpt-4o-mini",
        "      config:",
        "        openai_api_key: sk-test",
        f"        openai_api_base: {faulty.base(name)}",
    ]
    lines += [f"    {line}" for line in extra.strip("\n").splitlines()] if extra.strip() else []
    return "\n".join(lines) + "\n"


def chat_body(stream: bool = False) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], **({"stream": True} if stream else {})}

"""One gateway config over three emulated upstreams (OpenAI with the Responses API, Anthropic,
Google), shared by the Responses, Gemini-native and /gateway route tests; FALLBACK routes whose
first destination is down; and the usage records a test reads back."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.conftest import GatewayProcess, free_port, launch

OPENAI_KEY = "sk-gateway-openai-key-0123456789"
ANTHROPIC_KEY = "sk-ant-gateway-key-0123456789"
GEMINI_KEY = "gm-gateway-gemini-key-0123456789"


def openai_endpoint(name: str, model: str, base: str, kind: str = "chat") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: openai
      name: {model}
      config: {{openai_api_key: {OPENAI_KEY}, openai_api_base: "{base}"}}
"""


def _azure(name: str, base: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o
      config:
        openai_api_key: {OPENAI_KEY}
        openai_api_type: azure
        openai_api_base: "{base}"
        openai_deployment_name: my-deployment
        openai_api_version: "2025-04-01-preview"
"""


def _anthropic(name: str, model: str, base: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: anthropic
      name: {model}
      config: {{anthropic_api_key: {ANTHROPIC_KEY}, anthropic_api_base: "{base}"}}
"""


def gemini_endpoint(name: str, model: str, base: str, aliases: str = "[]") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    aliases: {aliases}
    model:
      provider: gemini
      name: {model}
      config: {{gemini_api_key: {GEMINI_KEY}, gemini_api_base: "{base}"}}
"""


def down_endpoints() -> list[str]:
    """An OpenAI and a Gemini endpoint whose upstream refuses connections (nothing listens)."""
    dead = f"http://127.0.0.1:{free_port()}"
    return [
        openai_endpoint("gpt-down", "gpt-5", f"{dead}/v1"),
        gemini_endpoint("gem-down", "gemini-2.0-flash", f"{dead}/v1beta/models"),
    ]


def fallback_routes(**routes: Sequence[str]) -> str:
    """`routes:` of FALLBACK routes, each named by its keyword, its destinations in order."""
    text = "routes:\n"
    for name, destinations in routes.items():
        text += f"  - name: {name}\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n    destinations:\n"
        text += "".join(f"      - name: {destination}\n" for destination in destinations)
    return text


def usage_rows(url: str, columns: str, count: int) -> list[tuple[Any, ...]]:
    """The usage database's records (`columns`, oldest first), once at least `count` are there
    (they are written in batches) or after 10 s."""
    engine = sa.create_engine(url)
    deadline = time.monotonic() + 10
    try:
        while True:
            with engine.connect() as connection:
                found = connection.execute(sa.text(f"SELECT {columns} FROM usage_records ORDER BY id")).all()
            if len(found) >= count or time.monotonic() > deadline:
                return [tuple(row) for row in found]
            time.sleep(0.2)
    finally:
        engine.dispose()


def api_config(openai: Any, anthropic: Any, google: Any, extra: str = "", more: Sequence[str] = ()) -> str:
    gemini_base = f"{google.url}/v1beta/models"
    endpoints = [
        openai_endpoint("gpt", "gpt-5", openai.base),
        openai_endpoint("gpt-err", "err-429", openai.base),
        openai_endpoint("gpt-stream-error", "stream-error", openai.base),
        openai_endpoint("embed", "text-embedding-3-small", openai.base, "embeddings"),
        _azure("azure", openai.url),
        _anthropic("claude", "claude-text", anthropic.base),
        _anthropic("claude-tools", "claude-tools", anthropic.base),
        _anthropic("claude-err", "err-529", anthropic.base),
        _anthropic("claude-stream-error", "stream-error", anthropic.base),
        gemini_endpoint("gem", "gemini-2.0-flash", gemini_base, '["gemini-2.5-*"]'),  # Gemini CLI's own names
        gemini_endpoint("gem-tools", "gemini-tools", gemini_base),
        gemini_endpoint("gem-err", "err-429", gemini_base),
        gemini_endpoint("gem-stream-error", "stream-error", gemini_base),
    ]
    return "endpoints:" + "".join([*endpoints, *more]) + extra


def started(*servers: Any) -> Iterator[tuple[Any, ...]]:
    """Emulated upstreams, started for a module's tests and stopped after them (`yield from`)."""
    running = tuple(server.start() for server in servers)
    try:
        yield running
    finally:
        for server in running:
            server.stop()


def running_gateway(directory: Path, config: str, **options: Any) -> Iterator[GatewayProcess]:
    """A gateway on `config` for a module's tests, stopped after them (`yield from`)."""
    process = launch(directory, config, **options)
    try:
        yield process
    finally:
        process.stop()

"""Config texts shared by the integration tests."""

from __future__ import annotations


def openai_endpoint(name: str, kind: str, model: str, base: str, extra: str = "") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: openai
      name: {model}
      config:
        openai_api_key: sk-test-secret-key
        openai_api_base: {base}
{extra}"""


def openai_config(base: str, extra_endpoints: str = "", chat_extra: str = "") -> str:
    return (
        "endpoints:"
        + openai_endpoint("chat", "chat", "gpt-4o-mini", base, chat_extra)
        + openai_endpoint("completions", "completions", "gpt-3.5-turbo-instruct", base)
        + openai_endpoint("embeddings", "embeddings", "text-embedding-3-small", base)
        + extra_endpoints
    )


# one mock chat endpoint with short answers: for load tests where the provider must cost nothing
MOCK_CHAT = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      name: mock-chat
      config:
        output_tokens: 4
"""

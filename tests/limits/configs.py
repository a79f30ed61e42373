"""Config texts for the rate-limit tests (all on the built-in mock provider)."""

from __future__ import annotations


def endpoint(name: str, limit: str = "", kind: str = "chat", config: str = "{}") -> str:
    """An endpoint; `limit` is the body of its limit block, one `key: value` per line."""
    text = f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: mock
      name: mock-model
      config: {config}
"""
    if limit:
        text += "    limit:\n" + "".join(f"      {line.strip()}\n" for line in limit.strip().splitlines())
    return text


def config(*endpoints: str, top: str = "", routes: str = "") -> str:
    return top + "endpoints:" + "".join(endpoints) + (f"routes:{routes}" if routes else "")

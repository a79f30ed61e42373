"""Checks of OpenAI's stream contract that every provider's stream must meet."""

from __future__ import annotations

from typing import Any


def check_stream_contract(chunks: list[dict[str, Any]], include_usage: bool = False) -> dict[str, Any] | None:
    """Asserts the contract and returns the usage the client was given (None if none).

    Without include_usage no chunk has empty choices and only a chunk with a finish_reason
    carries usage; with it the usage comes last, alone, in a `"choices": []` chunk.
    """
    body = chunks[:-1] if include_usage and chunks and chunks[-1]["choices"] == [] else chunks
    assert all(chunk["choices"] for chunk in body), "a usage-only chunk the client did not ask for"
    for chunk in body:
        if chunk.get("usage") is not None:
            assert not include_usage, "usage on a chunk other than the final usage-only one"
            assert any(choice["finish_reason"] is not None for choice in chunk["choices"])
        for choice in chunk["choices"]:
            for call in (choice.get("delta") or {}).get("tool_calls") or ():
                assert None not in (call.get("id", 1), call.get("type", 1)), call
                assert call.get("function", {}).get("name", 1) is not None, call
    if include_usage:
        return chunks[-1]["usage"] if chunks and chunks[-1]["choices"] == [] else None
    usages = [chunk["usage"] for chunk in chunks if chunk.get("usage") is not None]
    assert len(usages) <= 1
    return usages[0] if usages else None

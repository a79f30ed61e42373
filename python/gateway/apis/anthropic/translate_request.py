"""A Messages API request -> the gateway's chat payload (OpenAI's chat shape), for endpoints whose
provider does not speak the Messages API (OpenAI, Gemini, Mistral, Bedrock, ...).

Kept: system (string or text blocks), text and image content, tool_use / tool_result as tool
calls and tool messages (results first: they answer the previous assistant turn), custom tools
with their input_schema, tool_choice (disable_parallel_tool_use as parallel_tool_calls: false),
max_tokens, temperature, top_p, stop_sequences, stream.

Dropped, because the chat shape has no place for them: thinking blocks and the `thinking`
setting (the provider's reasoning, if any, stays the provider's), cache_control, top_k,
metadata, service_tier. A server tool (web search, code execution, ...) only Anthropic runs is
refused with a 400 naming it: silently dropping a tool would change what the model can do.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import BadRequest
from gateway.types import Payload

PASSED = ("max_tokens", "temperature", "top_p", "stream")
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def chat_payload(body: Payload) -> Payload:
    """The Messages body (already checked to have `model` and a `messages` list) as a chat
    payload without `model` (the endpoint's configured model applies)."""
    messages: list[Payload] = []
    system = system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(body["messages"]):
        messages.extend(chat_messages(message, index))
    payload: Payload = {"messages": messages}
    for key in PASSED:
        if body.get(key) is not None:
            payload[key] = body[key]
    stops = body.get("stop_sequences")
    if stops:
        payload["stop"] = stops
    tools = body.get("tools")
    if tools:
        payload["tools"] = [chat_tool(tool, index) for index, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            payload["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in TOOL_CHOICES:
            payload["tool_choice"] = TOOL_CHOICES[kind]
        if choice.get("disable_parallel_tool_use") is True and tools:
            payload["parallel_tool_calls"] = False
    return payload


def system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(
            block["text"] for block in system if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def chat_messages(message: Any, index: int) -> list[Payload]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise BadRequest(f"messages.{index}.role: Input should be 'user' or 'assistant'")
    content = message.get("content")
    if message["role"] == "assistant":
        return [assistant_message(content)]
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise BadRequest(f"messages.{index}.content: Input should be a string or a list of content blocks")
    out: list[Payload] = []
    parts: list[Payload] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            out.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": result_text(block)}
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(image_part(block.get("source") or {}))
        elif kind == "document":
            parts.append({"type": "text", "text": document_text(block)})
    if parts:
        if all(part["type"] == "text" for part in parts):
            out.append({"role": "user", "content": "\n".join(part["text"] for part in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def assistant_message(content: Any) -> Payload:
    if not isinstance(content, list):
        return {"role": "assistant", "content": content if isinstance(content, str) else ""}
    texts: list[str] = []
    calls: list[Payload] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        # thinking / redacted_thinking: Anthropic's signed reasoning, meaningless to another provider
    message: Payload = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def result_text(block: Payload) -> str:
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict):
                texts.append(
                    part.get("text", "") if part.get("type") == "text" else f"[{part.get('type')} omitted]"
                )
        content = "\n".join(texts)
    text = content if isinstance(content, str) else ""
    return f"Error: {text}" if block.get("is_error") is True else text


def image_part(source: Payload) -> Payload:
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    else:
        url = str(source.get("url", ""))
    return {"type": "image_url", "image_url": {"url": url}}


def document_text(block: Payload) -> str:
    source = block.get("source") or {}
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return str(source["data"])
    return "[document omitted: this endpoint's provider takes text documents only]"


def chat_tool(tool: Any, index: int) -> Payload:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise BadRequest(f"tools.{index}.name: Field required")
    kind = tool.get("type")
    if kind not in (None, "custom") or "input_schema" not in tool:
        raise BadRequest(
            f"tools.{index}: '{kind or tool['name']}' is a tool only Anthropic runs; this endpoint's "
            "provider takes custom tools (name, description, input_schema) only."
        )
    function: Payload = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    return {"type": "function", "function": function}

"""A Responses API request as a Chat Completions payload, for providers without the Responses
API (every provider's chat translation then applies).

    instructions                         -> a leading system message
    input: "text" | [items]              -> messages
      {role, content: str | [parts]}     -> that message (developer -> system; input_text and
                                            output_text -> text parts, input_image -> image_url)
      {type: function_call, ...}         -> an assistant tool_calls entry (consecutive calls join)
      {type: function_call_output, ...}  -> a tool message
      {type: reasoning}, item_reference  -> dropped: Chat has no place for them
    tools [{type: function, name, ...}]  -> [{type: function, function: {name, ...}}]; built-in
                                            tools (web_search, file_search, ...) are dropped
    tool_choice, max_output_tokens, temperature, top_p, parallel_tool_calls and text.format
    (json_schema / json_object)          -> their Chat equivalents
    reasoning, include, store, metadata, user, prompt_cache_key, ... -> not sent: providers
                                            without the Responses API refuse unknown fields
"""

from __future__ import annotations

from typing import Any

from gateway.errors import BadRequest
from gateway.types import Payload

TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")


def chat_payload(body: Payload, history: list[Payload] | None = None) -> Payload:
    """The Chat payload for `body`; `history` are the input and output items of the earlier
    turns (`previous_response_id`), placed before this request's input. A body of the wrong
    shape is a 400 that says where."""
    try:
        return _chat_payload(body, history)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise BadRequest(f"Invalid Responses request: {type(exc).__name__}: {exc}") from None


def _chat_payload(body: Payload, history: list[Payload] | None) -> Payload:
    messages: list[Payload] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    for item in [*(history or ()), *input_items(body.get("input"))]:
        add_item(messages, item)
    if not messages:
        raise BadRequest("Missing required parameter: 'input'.")
    payload: Payload = {"messages": messages}
    tools = [chat_tool(tool) for tool in body.get("tools") or () if _is_function_tool(tool)]
    if tools:
        payload["tools"] = tools
        choice = chat_tool_choice(body.get("tool_choice"))
        if choice is not None:
            payload["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            payload["parallel_tool_calls"] = body["parallel_tool_calls"]
    for source, target in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_output_tokens", "max_tokens"),
    ):
        if body.get(source) is not None:
            payload[target] = body[source]
    response_format = chat_response_format(body.get("text"))
    if response_format is not None:
        payload["response_format"] = response_format
    if body.get("stream") is True:
        payload["stream"] = True
    return payload


def input_items(raw: Any) -> list[Payload]:
    """`input` as a list of items (a string is one user message)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if isinstance(raw, list) and all(isinstance(item, dict) for item in raw):
        return raw
    raise BadRequest("Invalid 'input': expected a string or an array of input items.")


def add_item(messages: list[Payload], item: Payload) -> None:
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise BadRequest(f"Invalid input message role: {role!r}.")
        messages.append(
            {"role": "system" if role == "developer" else role, "content": content(item.get("content"))}
        )
    elif kind == "function_call":
        call = {
            "id": str(item.get("call_id") or item.get("id") or ""),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and not _answered(messages):
            last.setdefault("tool_calls", []).append(call)
            if last.get("content") == "":
                last["content"] = None
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else _joined_text(output)
        messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""), "content": text})
    elif kind in ("reasoning", "item_reference", None):
        return  # nothing Chat can carry (reasoning is the provider's own, encrypted)
    else:
        raise BadRequest(f"Input items of type '{kind}' are not supported for this endpoint's provider.")


def _answered(messages: list[Payload]) -> bool:
    """Whether the last assistant message's calls already have results after it."""
    return bool(messages) and messages[-1]["role"] == "tool"


def content(raw: Any) -> Any:
    """Message content: a string stays one; parts become Chat parts (all text: one string)."""
    if raw is None or isinstance(raw, str):
        return raw or ""
    if not isinstance(raw, list):
        raise BadRequest("Invalid message content: expected a string or an array of content parts.")
    parts: list[Payload] = []
    for part in raw:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal") or ""})
        elif kind == "input_image":
            url = part.get("image_url") or part.get("file_id")
            if not isinstance(url, str):
                raise BadRequest("input_image parts need an image_url for this endpoint's provider.")
            image: Payload = {"url": url}
            if part.get("detail") in ("auto", "low", "high"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise BadRequest(
                f"Content parts of type '{kind}' are not supported for this endpoint's provider."
            )
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _joined_text(raw: Any) -> str:
    if isinstance(raw, list):
        return "".join(str(part.get("text", "")) for part in raw if isinstance(part, dict))
    return "" if raw is None else str(raw)


def _is_function_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str)


def chat_tool(tool: Payload) -> Payload:
    function: Payload = {"name": tool["name"]}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def chat_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    return None


def chat_response_format(text: Any) -> Payload | None:
    spec = text.get("format") if isinstance(text, dict) else None
    if not isinstance(spec, dict):
        return None
    if spec.get("type") == "json_object":
        return {"type": "json_object"}
    if spec.get("type") == "json_schema":
        schema: Payload = {"name": spec.get("name") or "response", "schema": spec.get("schema") or {}}
        if isinstance(spec.get("strict"), bool):
            schema["strict"] = spec["strict"]
        return {"type": "json_schema", "json_schema": schema}
    return None

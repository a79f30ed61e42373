"""A Gemini `generateContent` body as a Chat Completions payload, for endpoints whose provider is
not Gemini (every provider's chat translation then applies).

    systemInstruction.parts[].text          -> a leading system message
    contents[] role user                    -> user messages (text; inlineData / fileData images
                                               as image_url parts)
    contents[] role model                   -> assistant messages (text; functionCall parts as
                                               tool_calls; `thought` parts dropped)
    functionResponse parts                  -> tool messages (the response object as JSON text)
    generationConfig                        -> temperature, top_p, top_k, max_tokens, stop, n,
                                               seed, response_format (responseMimeType JSON with
                                               responseSchema / responseJsonSchema)
    tools[].functionDeclarations            -> tools (parameters or parametersJsonSchema)
    toolConfig.functionCallingConfig        -> tool_choice (AUTO, ANY, NONE, allowedFunctionNames)

Gemini may leave call ids out: a call then gets the id Gemini's own chat translation gives it
(`call_` + md5 of name and arguments), and a functionResponse without an id answers the latest
call of that name. Both camelCase and snake_case field names are read, as Google's API reads them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.errors import BadRequest
from gateway.types import Payload

TOOL_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}


def field(data: Any, camel: str, snake: str | None = None) -> Any:
    if not isinstance(data, dict):
        return None
    value = data.get(camel)
    if value is None and snake is not None:
        value = data.get(snake)
    return value


def chat_payload(body: Payload) -> Payload:
    """The Chat payload for a generateContent body; a body of the wrong shape is a 400."""
    try:
        return _chat_payload(body)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise BadRequest(f"Invalid generateContent request: {type(exc).__name__}: {exc}") from None


def _chat_payload(body: Payload) -> Payload:
    messages: list[Payload] = []
    system = field(body, "systemInstruction", "system_instruction")
    if system is not None:
        text = system if isinstance(system, str) else "".join(_texts(field(system, "parts") or ()))
        if text:
            messages.append({"role": "system", "content": text})
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents is not specified")
    calls: dict[str, str] = {}  # function name -> the latest call's id
    for content in contents:
        if not isinstance(content, dict):
            raise BadRequest("Invalid value at 'contents': expected Content objects.")
        parts = [
            part for part in content.get("parts") or () if isinstance(part, dict) and not part.get("thought")
        ]
        if content.get("role") == "model":
            messages.append(_assistant(parts, calls))
        else:
            messages.extend(_user(parts, calls))
    payload: Payload = {"messages": messages}
    payload.update(generation(field(body, "generationConfig", "generation_config") or {}))
    tools = [
        _tool(declaration)
        for tool in body.get("tools") or ()
        for declaration in field(tool, "functionDeclarations", "function_declarations") or ()
    ]
    if tools:
        payload["tools"] = tools
        choice = _tool_choice(
            field(
                field(body, "toolConfig", "tool_config"), "functionCallingConfig", "function_calling_config"
            )
        )
        if choice is not None:
            payload["tool_choice"] = choice
    return payload


def _texts(parts: Any) -> list[str]:
    return [part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)]


def call_id(name: str, args: Any) -> str:
    arguments = orjson.dumps(args or {}).decode()
    return "call_" + hashlib.md5(f"{name}/{arguments}".encode(), usedforsecurity=False).hexdigest()


def _assistant(parts: list[Payload], calls: dict[str, str]) -> Payload:
    text = "".join(_texts(parts))
    tool_calls = []
    for part in parts:
        call = field(part, "functionCall", "function_call")
        if not isinstance(call, dict):
            continue
        name = str(call.get("name") or "")
        args = call.get("args") or {}
        identifier = str(call.get("id") or call_id(name, args))
        calls[name] = identifier
        tool_calls.append(
            {
                "id": identifier,
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(args).decode()},
            }
        )
    message: Payload = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    elif not text:
        message["content"] = ""
    return message


def _user(parts: list[Payload], calls: dict[str, str]) -> list[Payload]:
    out: list[Payload] = []
    chat_parts: list[Payload] = []
    for part in parts:
        answer = field(part, "functionResponse", "function_response")
        if isinstance(answer, dict):
            name = str(answer.get("name") or "")
            identifier = str(answer.get("id") or calls.get(name) or call_id(name, {}))
            result = answer.get("response")
            text = result if isinstance(result, str) else orjson.dumps(result or {}).decode()
            out.append({"role": "tool", "tool_call_id": identifier, "content": text})
        elif isinstance(part.get("text"), str):
            chat_parts.append({"type": "text", "text": part["text"]})
        else:
            chat_parts.append(_media(part))
    if chat_parts:
        if all(part["type"] == "text" for part in chat_parts):
            out.append({"role": "user", "content": "".join(part["text"] for part in chat_parts)})
        else:
            out.append({"role": "user", "content": chat_parts})
    return out


def _media(part: Payload) -> Payload:
    inline = field(part, "inlineData", "inline_data")
    if isinstance(inline, dict):
        mime = field(inline, "mimeType", "mime_type") or "application/octet-stream"
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{inline.get('data', '')}"}}
    stored = field(part, "fileData", "file_data")
    if isinstance(stored, dict) and field(stored, "fileUri", "file_uri"):
        return {"type": "image_url", "image_url": {"url": field(stored, "fileUri", "file_uri")}}
    kinds = ", ".join(sorted(part)) or "empty"
    raise BadRequest(f"Parts of this kind ({kinds}) cannot be sent to this endpoint's provider.")


def generation(config: Any) -> Payload:
    out: Payload = {}
    for camel, snake, target in (
        ("temperature", "temperature", "temperature"),
        ("topP", "top_p", "top_p"),
        ("topK", "top_k", "top_k"),
        ("maxOutputTokens", "max_output_tokens", "max_tokens"),
        ("stopSequences", "stop_sequences", "stop"),
        ("candidateCount", "candidate_count", "n"),
        ("seed", "seed", "seed"),
        ("presencePenalty", "presence_penalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty", "frequency_penalty"),
    ):
        value = field(config, camel, snake)
        if value is not None:
            out[target] = value
    if field(config, "responseMimeType", "response_mime_type") == "application/json":
        schema = field(config, "responseJsonSchema", "response_json_schema") or field(
            config, "responseSchema", "response_schema"
        )
        out["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
            if isinstance(schema, dict)
            else {"type": "json_object"}
        )
    return out


def _tool(declaration: Payload) -> Payload:
    function: Payload = {"name": declaration.get("name")}
    if declaration.get("description"):
        function["description"] = declaration["description"]
    parameters = field(declaration, "parametersJsonSchema", "parameters_json_schema") or declaration.get(
        "parameters"
    )
    if isinstance(parameters, dict):
        function["parameters"] = _lower_types(parameters)
    return {"type": "function", "function": function}


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-subset schemas spell types in capitals (`OBJECT`); JSON Schema does not."""
    if isinstance(schema, dict):
        return {
            key: value.lower() if key == "type" and isinstance(value, str) else _lower_types(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(item) for item in schema]
    return schema


def _tool_choice(config: Any) -> Any:
    if not isinstance(config, dict):
        return None
    mode = str(config.get("mode") or "AUTO").upper()
    allowed = field(config, "allowedFunctionNames", "allowed_function_names") or []
    if mode == "ANY" and len(allowed) == 1:
        return {"type": "function", "function": {"name": allowed[0]}}
    return TOOL_MODES.get(mode)

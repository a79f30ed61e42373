"""Standard chat/completions payloads -> a Gemini `generateContent` body (spec §7.9).

Shared by the `gemini` provider (Google AI Studio) and Gemini models on Vertex AI, which speak
the same body. Where this differs from MLflow, on purpose (spec §12 item 13):
* a tool without `description` (or `parameters`) is accepted; MLflow answers 500;
* tool parameters reach Gemini whole as `parametersJsonSchema` (every JSON-Schema keyword);
* assistant text sent alongside tool calls is kept as a text part before the function calls;
* `developer` messages count as system messages; an unknown role is a 422, not silently dropped;
* `input_audio` parts become `inlineData`; `seed` becomes `generationConfig.seed`;
* Gemini's own `safetySettings` and `cachedContent` pass through, and a `generationConfig`
  object sent by the client (e.g. `thinkingConfig`) is merged under the translated fields.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway._native import ParamScaler
from gateway.errors import InvalidParameter
from gateway.providers.base import invalid_field
from gateway.types import Payload

# Gemini's own spelling of a sampling parameter is refused, naming the standard one
NATIVE_KEYS = {
    "stopSequences": "stop",
    "candidateCount": "n",
    "maxOutputTokens": "max_tokens",
    "topK": "top_k",
    "topP": "top_p",
    "frequencyPenalty": "frequency_penalty",
    "presencePenalty": "presence_penalty",
}
# the standard sampling parameters renamed into generationConfig (Rust ParamScaler, built once)
GENERATION_RULES = ParamScaler(
    [
        {"field": "max_tokens", "fallback": "max_completion_tokens", "rename": "maxOutputTokens"},
        {"field": "stop", "rename": "stopSequences"},
        {"field": "n", "default": 1, "rename": "candidateCount"},  # MLflow always sends n: 1
        {"field": "top_k", "rename": "topK"},
        {"field": "top_p", "rename": "topP"},
        {"field": "frequency_penalty", "rename": "frequencyPenalty"},
        {"field": "presence_penalty", "rename": "presencePenalty"},
    ]
)
SAMPLING_FIELDS = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "top_k",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "seed",
)
GENERATION_KEYS = ("temperature", "seed", *NATIVE_KEYS)
PASSTHROUGH_KEYS = ("safetySettings", "cachedContent")
TOOL_MODES = {"none": "NONE", "required": "ANY"}
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.DOTALL)


def generate_content_body(payload: Payload, *, call_ids: bool = True) -> Payload:
    """A validated chat payload -> a generateContent body. `call_ids=False` leaves the
    `id` out of functionCall/functionResponse parts (Vertex AI)."""
    for native, standard in NATIVE_KEYS.items():
        if native in payload:
            raise InvalidParameter(f"Invalid parameter {native}. Use {standard} instead.")
    system, contents = translate_messages(payload["messages"], call_ids)
    body: Payload = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = generation_config(payload)
    if config:
        body["generationConfig"] = config
    tools = payload.get("tools")
    if tools:
        body["tools"] = [{"functionDeclarations": [function_declaration(tool) for tool in tools]}]
        tool_config = translate_tool_choice(payload.get("tool_choice"))
        if tool_config is not None:
            body["toolConfig"] = tool_config
    for key in PASSTHROUGH_KEYS:
        if key in payload:
            body[key] = payload[key]
    return body


def completions_as_chat(payload: Payload) -> Payload:
    """A completions payload as a one-message chat; an extra `system_prompt` leads it."""
    rest = {key: value for key, value in payload.items() if key not in ("prompt", "system_prompt")}
    messages: list[Payload] = [{"role": "user", "content": payload["prompt"]}]
    if payload.get("system_prompt") is not None:
        messages.insert(0, {"role": "system", "content": payload["system_prompt"]})
    return {**rest, "messages": messages}


def generation_config(payload: Payload) -> Payload:
    params = {key: payload[key] for key in SAMPLING_FIELDS if key in payload}
    GENERATION_RULES.apply(params)
    config = {key: params[key] for key in GENERATION_KEYS if key in params}
    response_format = payload.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema" and response_format.get("json_schema"):
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = response_format["json_schema"]["schema"]
        elif response_format.get("type") == "json_object":
            config["responseMimeType"] = "application/json"
    extra = payload.get("generationConfig")
    # Gemini-only knobs (thinkingConfig, responseModalities, ...) may be sent as is
    return {**extra, **config} if isinstance(extra, dict) else config


# -- messages ---------------------------------------------------------------------------
def translate_messages(messages: list[Payload], call_ids: bool) -> tuple[list[Payload], list[Payload]]:
    system: list[Payload] = []
    contents: list[Payload] = []
    call_names: dict[str, Any] = {}  # tool_call_id -> function name, for functionResponse
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_parts(content, index))
        elif role == "user":
            contents.append({"role": "user", "parts": _user_parts(content, index)})
        elif role == "assistant":
            contents.append({"role": "model", "parts": _model_parts(message, index, call_names, call_ids)})
        elif role == "tool":
            part = _function_response(message, call_names, call_ids)
            previous = contents[-1] if contents else None
            if previous is not None and previous.get("tool_results"):
                previous["parts"].append(part)  # parallel results share one user turn
            else:
                contents.append({"role": "user", "parts": [part], "tool_results": True})
        else:
            raise invalid_field(
                ("messages", index, "role"),
                "Gemini accepts the roles system, developer, user, assistant and tool.",
                role,
            )
    for turn in contents:
        turn.pop("tool_results", None)
    return system, contents


def _text_parts(content: Any, index: int) -> list[Payload]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise invalid_field(("messages", index, "content"), "System message parts must be text.", part)
        parts.append({"text": part["text"]})
    return parts


def _user_parts(content: Any, index: int) -> list[Payload]:
    if not isinstance(content, list):
        return [{"text": content if isinstance(content, str) else ""}]
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(_image(part["image_url"]["url"]))
        elif kind == "input_audio":
            audio = part["input_audio"]
            mime = AUDIO_TYPES.get(audio.get("format"), f"audio/{audio.get('format')}")
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        # reasoning parts are the model's earlier thoughts, not input Gemini accepts
    return parts or [{"text": ""}]


def _image(url: str) -> Payload:
    match = DATA_URL.fullmatch(url)
    if match is not None:
        return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}
    return {"text": f"[unsupported image reference: {url}]"}


def _model_parts(message: Payload, index: int, call_names: dict[str, Any], call_ids: bool) -> list[Payload]:
    content, calls = message.get("content"), message.get("tool_calls")
    parts = _text_parts(content, index) if isinstance(content, list) else []
    if isinstance(content, str) and (content or not calls):
        parts.append({"text": content})
    for position, call in enumerate(calls or ()):
        function = call.get("function") or {}
        name = function.get("name")
        call_names[call["id"]] = name
        arguments = function.get("arguments") or "{}"
        try:
            args = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            loc = ("messages", index, "tool_calls", position, "function", "arguments")
            raise invalid_field(loc, "Tool call arguments must be a JSON object.", arguments)
        function_call: Payload = {"id": call["id"], "name": name, "args": args}
        if not call_ids:
            del function_call["id"]
        part: Payload = {"functionCall": function_call}
        if call.get("thought_signature"):
            part["thoughtSignature"] = call["thought_signature"]
        parts.append(part)
    return parts or [{"text": ""}]


def _function_response(message: Payload, call_names: dict[str, Any], call_ids: bool) -> Payload:
    call_id = message.get("tool_call_id")
    if call_id not in call_names:
        raise InvalidParameter(
            f"Invalid tool message: tool_call_id={call_id} does not match any tool call in a "
            "preceding assistant message."
        )
    response: Payload = {"id": call_id, "name": call_names[call_id], "response": _tool_result(message)}
    if not call_ids:
        del response["id"]
    return {"functionResponse": response}


def _tool_result(message: Payload) -> Payload:
    """A JSON object result as is; any other result as {"result": value}."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    value: Any = content
    if isinstance(content, str):
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            value = content
    return value if isinstance(value, dict) else {"result": value}


# -- tools ------------------------------------------------------------------------------
def function_declaration(tool: Payload) -> Payload:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        raise InvalidParameter(
            f"Only function calling tool is supported, but received tool type {tool.get('type')}"
        )
    out: Payload = {"name": function["name"]}
    if function.get("description") is not None:
        out["description"] = function["description"]
    if function.get("parameters") is not None:
        out["parametersJsonSchema"] = function["parameters"]
    return out


def translate_tool_choice(choice: Any) -> Payload | None:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if choice in TOOL_MODES:
        return {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}
    return None  # "auto" is Gemini's default

"""Chat Completions answers as Responses API objects and stream events.

A whole answer becomes one `response` object: a `message` output item for the text, one
`function_call` item per tool call. A stream becomes the Responses event sequence the openai SDK
accumulates: `response.created`, `response.in_progress`, then per output item
`response.output_item.added`, (`response.content_part.added`, `response.output_text.delta`...,
`response.output_text.done`, `response.content_part.done` | `response.function_call_arguments.delta`...,
`response.function_call_arguments.done`), `response.output_item.done`, and finally
`response.completed` with the usage (or `response.incomplete` when the answer was cut at its
token limit). Every event carries a `sequence_number` that increases by one from 0.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from gateway.apis.chat_chunks import ChatChunkWriter
from gateway.schemas.responses import ChatResponse
from gateway.types import Payload

# Chat finish reasons that end a response early, as Responses reports them
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def responses_usage(usage: Any) -> Payload | None:
    """Chat usage -> Responses usage (input/output tokens, cached and reasoning details)."""
    if not isinstance(usage, dict) or usage.get("prompt_tokens") is None:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    reasoning = completion_details.get("reasoning_tokens") or usage.get("thoughtsTokenCount") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": prompt_details.get("cached_tokens") or 0,
            "cache_write_tokens": usage.get("cache_creation_input_tokens")
            or prompt_details.get("cache_write_tokens")
            or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def chat_usage(usage: Any) -> Payload | None:
    """Responses usage -> Chat usage (the shape the usage record and the limits read)."""
    if not isinstance(usage, dict) or usage.get("input_tokens") is None:
        return None
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    out: Payload = {
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
        "total_tokens": usage.get("total_tokens"),
    }
    if input_details.get("cached_tokens") is not None:
        out["prompt_tokens_details"] = {"cached_tokens": input_details["cached_tokens"]}
    if input_details.get("cache_write_tokens"):
        out["cache_creation_input_tokens"] = input_details["cache_write_tokens"]
    if output_details.get("reasoning_tokens") is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": output_details["reasoning_tokens"]}
    return out


class ResponseShell:
    """What every `response` object of one request shares: id, creation time, the request's
    echoed settings."""

    def __init__(self, body: Payload, model: str, response_id: str | None = None) -> None:
        self.id = response_id or new_id("resp")
        self.created_at = int(time.time())
        self.body = body
        self.model = model

    def render(
        self, status: str, output: list[Payload], usage: Payload | None = None, finish: str | None = None
    ) -> Payload:
        body = self.body
        incomplete = INCOMPLETE.get(finish or "")
        text = body.get("text") if isinstance(body.get("text"), dict) else None
        reasoning: Payload = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": "incomplete" if incomplete and status == "completed" else status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature"),
            "text": text or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p"),
            "truncation": body.get("truncation") or "disabled",
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }


def message_item(item_id: str, text: str, status: str = "completed") -> Payload:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> Payload:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def output_items(response: ChatResponse) -> list[Payload]:
    if not response.choices:
        return []
    message = response.choices[0].message
    items: list[Payload] = []
    text = message.content if isinstance(message.content, str) else _parts_text(message.content)
    if text:
        items.append(message_item(new_id("msg"), text))
    for call in message.tool_calls or ():
        function = call.get("function") or {}
        items.append(
            call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or "{}"),
            )
        )
    return items


def _parts_text(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


def whole_response(shell: ResponseShell, response: ChatResponse) -> Payload:
    finish = response.choices[0].finish_reason if response.choices else None
    return shell.render("completed", output_items(response), responses_usage(response.usage), finish)


class _Item:
    __slots__ = ("call_id", "id", "index", "kind", "name", "text")

    def __init__(self, kind: str, index: int, item_id: str, call_id: str = "", name: str = "") -> None:
        self.kind = kind  # "message" or "function_call"
        self.index = index  # output_index
        self.id = item_id
        self.text = ""  # the text, or the call's arguments
        self.call_id = call_id
        self.name = name


class EventWriter(ChatChunkWriter):
    """Chat chunks in, Responses events (SSE bytes) out, with one sequence counter."""

    def __init__(self, shell: ResponseShell) -> None:
        super().__init__()
        self.shell = shell
        self.sequence = 0
        self.items: list[_Item] = []
        self.message: _Item | None = None  # the open text item
        self.calls: dict[int, _Item] = {}  # open function calls by their Chat index
        self.final: Payload | None = None  # the completed response, once finished

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def start(self) -> bytes:
        snapshot = self.shell.render("in_progress", [])
        return self._event("response.created", response=snapshot) + self._event(
            "response.in_progress", response=snapshot
        )

    def text(self, text: str) -> bytes:
        out = b""
        if self.message is None:
            out = self._close_calls()
            item = self.message = _Item("message", len(self.items), new_id("msg"))
            self.items.append(item)
            out += self._event(
                "response.output_item.added",
                output_index=item.index,
                item={**message_item(item.id, "", "in_progress"), "content": []},
            )
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        item = self.message
        item.text += text
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def call(self, call: Payload) -> bytes:
        position = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        item = self.calls.get(position)
        if item is None:
            out = self._close_message()
            call_id = str(call.get("id") or new_id("call"))
            item = _Item(
                "function_call", len(self.items), new_id("fc"), call_id, str(function.get("name") or "")
            )
            self.items.append(item)
            self.calls[position] = item
            out += self._event(
                "response.output_item.added",
                output_index=item.index,
                item=call_item(item.id, item.call_id, item.name, "", "in_progress"),
            )
        arguments = function.get("arguments")
        if arguments:
            item.text += arguments
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=item.id,
                output_index=item.index,
                delta=arguments,
            )
        return out

    def _close_message(self) -> bytes:
        item = self.message
        if item is None:
            return b""
        self.message = None
        part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}
        return (
            self._event(
                "response.output_text.done",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                text=item.text,
                logprobs=[],
            )
            + self._event(
                "response.content_part.done",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part=part,
            )
            + self._event(
                "response.output_item.done", output_index=item.index, item=message_item(item.id, item.text)
            )
        )

    def _close_calls(self) -> bytes:
        out = []
        for item in self.calls.values():
            arguments = item.text or "{}"
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    name=item.name,
                    arguments=arguments,
                )
            )
            out.append(
                self._event(
                    "response.output_item.done",
                    output_index=item.index,
                    item=call_item(item.id, item.call_id, item.name, arguments),
                )
            )
        self.calls = {}
        return b"".join(out)

    def output(self) -> list[Payload]:
        return [
            message_item(item.id, item.text)
            if item.kind == "message"
            else call_item(item.id, item.call_id, item.name, item.text or "{}")
            for item in self.items
        ]

    def finish_events(self) -> bytes:
        closing = self._close_message() + self._close_calls()
        final = self.final = self.shell.render(
            "completed", self.output(), responses_usage(self.usage), self.finish
        )
        return closing + self._event(f"response.{final['status']}", response=final)

    def error(self, message: str, code: str) -> bytes:
        """The API's error event, then `response.failed` with what was produced so far."""
        failed = self.shell.render("failed", self.output())
        failed["error"] = {"code": code, "message": message}
        return self._event("error", code=code, message=message, param=None) + self._event(
            "response.failed", response=failed
        )


def error_code(status: int) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"

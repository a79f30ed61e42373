"""Usage read on the side of a passthrough answer, whichever API it speaks: OpenAI Chat chunks,
Responses events, Anthropic's message_start/message_delta, Gemini's candidates and
usageMetadata (SSE events or a streamed JSON array's items), in OpenAI Chat's terms for the
usage record, cost, budgets and token limits."""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.apis.responses.answers import chat_usage as responses_usage
from gateway.errors import UpstreamUnavailable
from gateway.pipeline.context import StreamTally
from gateway.providers.anthropic_messages import usage as anthropic_usage
from gateway.providers.gemini_replies import usage as gemini_usage

ANTHROPIC, GEMINI, OPENAI = "anthropic", "gemini", "openai"  # usage shapes


def whole_usage(body: bytes, family: str) -> dict[str, Any] | None:
    """Usage from a proxied JSON answer, in OpenAI Chat's terms."""
    data = decoded(body)
    if isinstance(data, list) and data and isinstance(data[-1], dict):
        data = data[-1]  # a streamed JSON array read whole: its last item has the usage
    return reported_usage(data, family) if isinstance(data, dict) else None


def reported_usage(data: dict[str, Any], family: str) -> dict[str, Any] | None:
    """The usage an answer (or a stream event's object) reports, in OpenAI Chat's terms."""
    if isinstance(data.get("usageMetadata"), dict):
        return gemini_usage(data["usageMetadata"])
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:
        return usage
    if family == ANTHROPIC:
        return anthropic_usage(usage)  # cache reads and writes counted
    if "input_tokens" in usage:
        return responses_usage(usage)
    return None


class StreamUsage:
    """Reads a proxied stream's usage and text length from its events, whichever API it is:
    Chat chunks, Responses events, Anthropic's message_start/message_delta, Gemini's."""

    def __init__(self, family: str, tally: StreamTally) -> None:
        self.family = family
        self.tally = tally
        self.anthropic: dict[str, Any] = {}  # message_start's usage, updated by message_delta's

    def __call__(self, name: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if self.family == ANTHROPIC and kind in ("message_start", "message_delta"):
            usage = (
                (event.get("message") or {}).get("usage") if kind == "message_start" else event.get("usage")
            )
            if isinstance(usage, dict):
                self.anthropic.update({k: v for k, v in usage.items() if v is not None})
                self.tally.usage = anthropic_usage(self.anthropic)
            return
        self.tally.chars += text_length(event)
        response = event.get("response")  # Responses events carry the response object
        usage = reported_usage(response if isinstance(response, dict) else event, self.family)
        if usage is not None:
            self.tally.usage = usage


def text_length(event: dict[str, Any]) -> int:
    """The generated text an event carries (for an estimate when no usage is reported)."""
    delta = event.get("delta")
    if isinstance(delta, str):  # Responses' output_text.delta
        return len(delta) if event.get("type") == "response.output_text.delta" else 0
    if isinstance(delta, dict) and isinstance(delta.get("text"), str):  # Anthropic's text_delta
        return len(delta["text"])
    count = 0
    for choice in event.get("choices") or ():  # Chat chunks
        content = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
        count += len(content) if isinstance(content, str) else 0
    for candidate in event.get("candidates") or ():  # Gemini
        for part in (
            ((candidate.get("content") or {}).get("parts") or ()) if isinstance(candidate, dict) else ()
        ):
            count += len(part["text"]) if isinstance(part, dict) and isinstance(part.get("text"), str) else 0
    return count


STRUCTURE = re.compile(rb'[{}\[\]"]')
IN_STRING = re.compile(rb'["\\]')


class JsonArrayItems:
    """Cuts a streamed JSON array (`[{...},\r\n{...}]`, Gemini's stream without `alt=sse`) into
    its items as the bytes arrive, holding only the item in progress (at most `cap` bytes). The
    scan jumps from one structural character to the next, so long texts cost little."""

    def __init__(self, cap: int, label: str) -> None:
        self.cap = cap
        self.label = label
        self.item = b""  # the bytes of the item in progress
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self.item + chunk
        pos = len(self.item)
        start: int | None = 0 if self.item else None
        items: list[bytes] = []
        while pos < len(data):
            if self.in_string:
                if self.escaped:
                    pos, self.escaped = pos + 1, False
                    continue
                found = IN_STRING.search(data, pos)
                if found is None:
                    break
                pos = found.end()
                self.escaped, self.in_string = found.group() == b"\\", found.group() != b'"'
                continue
            found = STRUCTURE.search(data, pos)
            if found is None:
                break
            pos, mark = found.end(), found.group()
            if mark == b'"':
                self.in_string = True
            elif mark in (b"{", b"["):
                self.depth += 1
                if self.depth == 2 and start is None:
                    start = found.start()
            else:
                self.depth -= 1
                if self.depth == 1 and start is not None:
                    items.append(data[start:pos])
                    start = None
        self.item = data[start:] if start is not None else b""
        if self.cap and len(self.item) > self.cap:
            raise UpstreamUnavailable(f"{self.label} sent a stream item over {self.cap} bytes.")
        return items


def decoded(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None

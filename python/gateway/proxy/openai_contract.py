"""OpenAI's wire contract for what every provider produces, applied in one place.

* Usage: a usage-only chunk (`"choices": []`) reaches the client only when it asked for one
  with `stream_options.include_usage: true`, and then it is the last chunk and no other chunk
  carries usage. Otherwise the usage rides on the chunk that carries `finish_reason` (as MLflow
  does for Anthropic and Gemini), so `chunk.choices[0]` holds for every chunk. The gateway may
  still ask the upstream for usage (token limits need it): this only shapes what the client sees.
* Tool-call deltas carry only the fields the upstream sent: OpenAI omits `id`, `type` and
  `function.name` after a call's first delta, and the `openai` SDK's stream helper breaks on
  them as nulls.

* On the OpenAI routes (`/v1/*`) ids are strings and completions chunks are
  `"object": "text_completion"`, as OpenAI sends them; MLflow's routes keep MLflow's shapes
  (a null id where MLflow has one, `text_completion_chunk`).

The chunk that carries `finish_reason` is held back until the usage arrives or the stream ends;
the upstream sends both within the same few events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from gateway.schemas.responses import (
    ChatChunk,
    ChatResponse,
    Chunk,
    CompletionsChunk,
    CompletionsResponse,
    Response,
)
from gateway.types import Payload


def wants_usage(payload: Payload) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def openai_response(response: Response) -> Response:
    """A response as the OpenAI routes send it: a string id."""
    if isinstance(response, ChatResponse | CompletionsResponse) and response.id is None:
        response.id = _new_id(response)
    return response


def _new_id(item: Response | Chunk) -> str:
    prefix = "chatcmpl" if isinstance(item, ChatResponse | ChatChunk) else "cmpl"
    return f"{prefix}-{uuid.uuid4().hex}"


async def openai_stream_contract(
    stream: AsyncIterator[list[Chunk]], include_usage: bool, openai_route: bool = False, tally: Any = None
) -> AsyncIterator[list[Chunk]]:
    """`tally` (optional) learns the last usage reported (`.usage`) and the length of the text
    delivered (`.chars`), for the request's usage record."""
    shaper = _Shaper(include_usage, openai_route, tally)
    try:
        async for batch in stream:
            out = shaper.feed(batch)
            if out:
                yield out
    except Exception:
        if shaper.held is not None:  # what was delivered before a failure still reaches the client
            yield [shaper.held]
        raise
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    tail = shaper.tail()
    if tail:
        yield tail


class _Shaper:
    __slots__ = ("held", "include_usage", "last", "openai_route", "stream_id", "tally", "usage", "usage_only")

    def __init__(self, include_usage: bool, openai_route: bool, tally: Any = None) -> None:
        self.tally = tally
        self.include_usage = include_usage
        self.openai_route = openai_route
        self.stream_id: str | None = None  # given to chunks without an id, on the OpenAI routes
        self.held: Chunk | None = None  # the latest chunk with a finish_reason, awaiting usage
        self.usage: dict[str, Any] | None = None  # the latest report (reports are cumulative)
        self.usage_only: Chunk | None = None  # the upstream's own usage-only chunk, if any
        self.last: Chunk | None = None

    def feed(self, batch: list[Chunk]) -> list[Chunk]:
        out: list[Chunk] = []
        for chunk in batch:
            self.last = chunk
            if self.openai_route:
                self._openai_identity(chunk)
            if chunk.usage is not None:
                self.usage = chunk.usage
                chunk.usage = None
                if self.tally is not None:
                    self.tally.usage = self.usage
            if not chunk.choices:
                self.usage_only = chunk
                continue
            if isinstance(chunk, ChatChunk):
                _drop_null_tool_call_fields(chunk)
            if self.tally is not None:
                self.tally.chars += _text_length(chunk)
            if self.held is not None:
                out.append(self.held)
                self.held = None
            if any(choice.finish_reason is not None for choice in chunk.choices):
                self.held = chunk
            else:
                out.append(chunk)
        return out

    def _openai_identity(self, chunk: Chunk) -> None:
        if chunk.id is None:
            if self.stream_id is None:
                self.stream_id = _new_id(chunk)
            chunk.id = self.stream_id
        if isinstance(chunk, CompletionsChunk):
            chunk.object = "text_completion"

    def tail(self) -> list[Chunk]:
        tail: list[Chunk] = []
        if self.held is not None:
            if not self.include_usage:
                self.held.usage = self.usage
            tail.append(self.held)
        if self.include_usage and self.usage is not None:
            template = self.usage_only or self.last
            assert template is not None
            tail.append(_usage_chunk(template, self.usage))
        return tail


def _usage_chunk(template: Chunk, usage: dict[str, Any]) -> Chunk:
    if isinstance(template, ChatChunk):
        return ChatChunk(
            id=template.id,
            created=template.created,
            model=template.model,
            choices=[],
            usage=usage,
            provider=template.provider,
        )
    return CompletionsChunk(
        id=template.id,
        object=template.object,
        created=template.created,
        model=template.model,
        choices=[],
        usage=usage,
    )


def _drop_null_tool_call_fields(chunk: ChatChunk) -> None:
    for choice in chunk.choices:
        calls = choice.delta.tool_calls
        if not calls:
            continue
        for call in calls:
            for key in ("id", "type"):
                if key in call and call[key] is None:
                    del call[key]
            function = call.get("function")
            if isinstance(function, dict):
                for key in ("name", "arguments"):
                    if key in function and function[key] is None:
                        del function[key]


def _text_length(chunk: Chunk) -> int:
    total = 0
    for choice in chunk.choices:
        text = choice.delta.content if isinstance(chunk, ChatChunk) else choice.text  # type: ignore[union-attr]
        if isinstance(text, str):
            total += len(text)
    return total

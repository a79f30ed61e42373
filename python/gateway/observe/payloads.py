"""Prompt and answer text for the access log, only when the config says `log_payloads: true`.

The request's text is in its payload. The answer's is taken from what the client was sent: the
server keeps a copy of the body bytes (`keep_answer`, at most MAX_ANSWER_BYTES) and the text is
read back from the JSON answer or the SSE events once the request has ended, off the path of
any request that does not log payloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext
    from gateway.types import Message, Payload

ANSWER_KEY = "gateway.answer"  # the scope key holding the answer's bytes
MAX_ANSWER_BYTES = 1024 * 1024
REQUEST_FIELDS = ("messages", "prompt", "input")  # chat, completions, embeddings


def keep_answer(ctx: RequestContext) -> None:
    """Wraps the request's `send` so the answer's body bytes are kept in its scope."""
    send = ctx.send
    kept = bytearray()
    ctx.scope[ANSWER_KEY] = kept

    async def keeping(message: Message) -> None:
        if message["type"] == "http.response.body" and len(kept) < MAX_ANSWER_BYTES:
            kept.extend(message.get("body", b"")[: MAX_ANSWER_BYTES - len(kept)])
        await send(message)

    ctx.send = keeping


def request_text(payload: Payload) -> dict[str, Any] | None:
    found = {name: payload[name] for name in REQUEST_FIELDS if name in payload}
    return found or None


def answer_text(body: bytes) -> str | None:
    """The generated text of a JSON answer or an SSE stream (chat or completions)."""
    if body.startswith(b"data:"):
        parts: list[str] = []
        for line in body.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                event = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue  # [DONE], a cut-off last event
            parts.extend(_texts(event, "delta"))
        return "".join(parts)
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    texts = _texts(answer, "message")
    return "\n".join(texts) if texts else None


def _texts(answer: Any, message_key: str) -> list[str]:
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        return []
    texts = []
    for choice in answer["choices"]:
        if not isinstance(choice, dict):
            continue
        message = choice.get(message_key)
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(text, str):
            texts.append(text)
    return texts

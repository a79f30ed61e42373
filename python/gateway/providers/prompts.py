"""Completions prompts in every form OpenAI accepts: a string, a list of strings, token arrays.

Providers whose upstream speaks OpenAI's completions API take the list as it is. For the others
a one-prompt list becomes its string; several prompts are answered one upstream call each
(concurrently, a bounded number) and merged as OpenAI merges them: choices numbered prompt by
prompt, usage summed. Token arrays and several prompts in one stream need the upstream's own
support and are refused with a 400 that says so.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.errors import BadRequest
from gateway.providers.base import Provider
from gateway.schemas.responses import CompletionsChoice, CompletionsResponse, Response
from gateway.types import COMPLETIONS, EndpointType, Payload

MAX_FANOUT_PROMPTS = 32  # prompts one request may ask a provider without native lists for
FANOUT_CONCURRENCY = 8  # of those, upstream calls at once


def prepare_prompt(
    provider: Provider, kind: EndpointType, payload: Payload, stream: bool
) -> list[str] | None:
    """Normalises the prompt in place for the provider; returns the prompts to fan out (several
    strings for a provider without native lists), else None."""
    prompt = payload.get("prompt")
    if kind != COMPLETIONS or not isinstance(prompt, list) or provider.native_prompt_lists:
        return None
    if not all(isinstance(item, str) for item in prompt):
        raise BadRequest(
            f"Token-array prompts are not supported by the {provider.display_name} provider; "
            "send the prompt as text."
        )
    if len(prompt) == 1:
        payload["prompt"] = prompt[0]
        return None
    if stream:
        raise BadRequest(
            f"A streamed request may carry one prompt for the {provider.display_name} provider; "
            f"this one has {len(prompt)}. Send one request per prompt, or do not stream."
        )
    if len(prompt) > MAX_FANOUT_PROMPTS:
        raise BadRequest(
            f"At most {MAX_FANOUT_PROMPTS} prompts per request for the {provider.display_name} "
            f"provider; this one has {len(prompt)}."
        )
    return list(prompt)


async def invoke_each(provider: Provider, payload: Payload, prompts: list[str]) -> Response:
    """One upstream call per prompt, merged into one answer; the first failure cancels the rest."""
    gate = asyncio.Semaphore(FANOUT_CONCURRENCY)

    async def one(prompt: str) -> Response:
        async with gate:
            return await provider.invoke(COMPLETIONS, {**payload, "prompt": prompt})

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(prompt)) for prompt in prompts]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    answers = [task.result() for task in tasks]
    return merge(answers)


def merge(answers: list[Response]) -> CompletionsResponse:
    first = answers[0]
    assert isinstance(first, CompletionsResponse)
    choices: list[CompletionsChoice] = []
    usage: dict[str, Any] = {}
    for answer in answers:
        assert isinstance(answer, CompletionsResponse)
        for choice in answer.choices:
            choices.append(
                CompletionsChoice(index=len(choices), text=choice.text, finish_reason=choice.finish_reason)
            )
        for key, value in answer.usage.items():
            usage[key] = _add(usage[key], value) if key in usage else value
    return CompletionsResponse(
        id=first.id, created=first.created, model=first.model, choices=choices, usage=usage
    )


def _add(total: Any, value: Any) -> Any:
    """Sums token counts; unknown (None) anywhere stays unknown."""
    if total is None or value is None:
        return None
    if isinstance(total, int) and isinstance(value, int):
        return total + value
    return total

"""The usage record: one per request, whatever its outcome (answered, refused, failed, client
gone). Built once by the pipeline's record phase; sinks read it and never change it."""

from __future__ import annotations

import msgspec


class UsageRecord(msgspec.Struct, kw_only=True, frozen=True):
    request_id: str
    started_at: float  # Unix time (UTC) the request arrived
    method: str
    path: str
    route: str  # the API style the client spoke: "mlflow", "openai", "anthropic", "gemini"
    endpoint: str | None  # the endpoint that served it (a traffic route's destination)
    asked: str | None  # the name the client asked for (a traffic route's own name)
    provider: str | None
    model: str | None  # the upstream model: the endpoint's configured model name
    consumer: str | None  # the consumer key's id, or "jwt:<subject>"; None: anonymous
    team: str | None
    stream: bool
    status: int  # the HTTP status the client got (200 for a stream that later failed)
    error: str | None  # the error class (UpstreamTimeout, RateLimited, ...), None on success
    latency_ms: float  # arrival to the last byte sent
    ttft_ms: float | None  # arrival to the first byte of the answer (streams: first event)
    overhead_ms: float | None  # the gateway's own time: latency without the upstream's
    prompt_tokens: int = 0  # every input token, cached and cache-written ones included
    completion_tokens: int = 0  # output tokens, reasoning included
    cached_tokens: int = 0  # input tokens read from the provider's prompt cache
    cache_write_tokens: int = 0  # input tokens written to the provider's prompt cache
    reasoning_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False  # the provider reported no usage: tokens estimated from text
    cost_usd: float = 0.0
    priced: bool = True  # False when no price is known for the model (cost_usd is 0)
    budget: str | None = None  # the budget that refused it, if one did
    attempts: int = 0  # upstream calls made (retries and fallbacks included; 0: none made)

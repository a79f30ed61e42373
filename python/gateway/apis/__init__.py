"""Other API families served on the request pipeline (pipeline.run_api), each an `ApiAdapter`:
it reads its own request bodies and answers in its own shapes, streams included, while
authentication, limits, budgets and usage records stay the pipeline's.

    anthropic/    Anthropic's Messages API: /v1/messages, /v1/messages/count_tokens
"""

from __future__ import annotations

from gateway.apis.anthropic.adapter import COUNT_TOKENS_PATHS, MESSAGES_PATHS, MessagesApi
from gateway.pipeline import ApiAdapter

__all__ = ["api_adapter"]


def api_adapter(path: str) -> ApiAdapter | None:
    """The adapter serving a POST to `path` (one per request), None when no API family has it."""
    if path in MESSAGES_PATHS:
        return MessagesApi()
    if path in COUNT_TOKENS_PATHS:
        return MessagesApi(counting=True)
    return None

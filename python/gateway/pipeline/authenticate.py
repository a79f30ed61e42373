"""authenticate: who is calling, from the request's headers alone (before the body is read).

The client's address must pass the IP lists (behind trusted proxies, the forwarded address).
Then a gateway key (`gw-...`, looked up in this worker's in-memory copy of the key table, never
the database) or, when `auth.jwt` is configured, a signed JWT makes the caller that consumer.
Anything else is ignored unless `require_keys` is on: MLflow's own clients may send a token meant
for something else. Keys are read where each SDK sends them: `Authorization: Bearer`, `x-api-key`,
and for Google's SDKs and Gemini CLI `x-goog-api-key` or the `key` query parameter.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from gateway.auth.access import (
    credential,
    expired_key,
    is_gateway_key,
    is_jwt,
    refuse_missing,
    unknown_key,
)
from gateway.budgets.admission import key_budget
from gateway.control.limits.requests import CONSUMER_SCOPE_KEY
from gateway.pipeline.context import Consumer, RequestContext
from gateway.types import Scope

CONSUMER_KEY = CONSUMER_SCOPE_KEY  # the scope key holding the consumer (limits read it)


async def authenticate(ctx: RequestContext) -> None:
    access = ctx.table.access
    access.check_address(ctx.scope)
    token = credential(ctx.scope) or google_credential(ctx.scope)
    if token is not None and ctx.keys is not None and is_gateway_key(token):
        record = await ctx.keys.lookup(token)
        if record is None:
            raise unknown_key()
        if record.expired(time.time()):
            raise expired_key()
        limiter = ctx.key_limiters.get(record, ctx.table.config) if ctx.key_limiters is not None else None
        budget = key_budget(record) if record.budget else None
        consumer = Consumer(record.id, "key", record.name, record.team, record.endpoints, limiter, budget)
    elif token is not None and is_jwt(access, token):
        assert access.jwt is not None
        identity = await access.jwt.verify(token)
        consumer = Consumer(
            f"jwt:{identity.consumer}", "jwt", identity.consumer, identity.team, identity.endpoints or ()
        )
    else:
        refuse_missing(access)
        return
    ctx.consumer = consumer
    ctx.scope[CONSUMER_KEY] = consumer


def google_credential(scope: Scope) -> str | None:
    """Where Google's SDKs and Gemini CLI present a key: the `x-goog-api-key` header, or the
    `key` query parameter."""
    for name, value in scope["headers"]:
        if name == b"x-goog-api-key":
            return str(value.decode("latin-1")).strip() or None
    for pair in scope.get("query_string", b"").split(b"&"):
        if pair.startswith(b"key="):
            return unquote(pair[4:].decode("latin-1")) or None
    return None

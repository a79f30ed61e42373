"""read: the request body -> a validated payload.

The body arrives within its deadline and size (server/http.py), its JSON cost is bounded before
it is decoded (schemas/validation.py), and it is validated against the endpoint type's schema,
with FastAPI's exact 422 bodies for what fails.
"""

from __future__ import annotations

from gateway.pipeline.context import RequestContext
from gateway.schemas.validation import decode_json_body, validate_payload
from gateway.server.http import header, read_body
from gateway.settings import settings
from gateway.types import EndpointType


async def read(ctx: RequestContext, kind: EndpointType) -> None:
    body = await read_body(ctx.scope, ctx.receive, settings().max_request_bytes)
    payload = await decode_json_body(body, header(ctx.scope, b"content-type"))
    validate_payload(payload, kind)
    ctx.payload = payload
    ctx.kind = kind

"""resolve: which endpoint serves the request.

MLflow's routes name it in the path (`/endpoints/{name}/invocations`), resolved before the body
is read, so an unknown name is a 404 whatever the body; the OpenAI routes name it in the body's
`model`, resolved after. A traffic route picks its destination here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import BadRequest, NotFound, RequestValidationError
from gateway.pipeline.context import RequestContext
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType

if TYPE_CHECKING:
    from gateway.control.table import Target

KIND_WORD = {CHAT: "a chat", COMPLETIONS: "a completions", EMBEDDINGS: "an embeddings"}


def resolve_name(ctx: RequestContext, name: str) -> EndpointType:
    """The endpoint named in the path; its type is the body's schema."""
    target = ctx.table.resolve(name)
    if target is None:
        raise NotFound("Not Found")
    ctx.target = target
    ctx.asked = name
    return target.endpoint_type


def resolve_model(ctx: RequestContext, kind: EndpointType) -> str:
    """The endpoint named by the body's `model` on an OpenAI route of type `kind`; returns the
    name asked for (a traffic route's, not the destination's)."""
    name = ctx.payload.get("model")
    if not isinstance(name, str):
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body", "model"], "msg": "Field required", "input": ctx.payload}]
        )
    target = resolve_asked(ctx, name)
    if target.endpoint_type != kind:
        raise BadRequest(f"Endpoint '{name}' is not {KIND_WORD[kind]} endpoint.")
    ctx.payload["model"] = None  # the endpoint's configured model applies
    return name


def resolve_asked(ctx: RequestContext, name: str) -> Target:
    """The endpoint a model name in a body reaches (its own name, a route's, an alias)."""
    target = ctx.table.resolve(name)
    if target is None:
        raise NotFound(
            f"Model '{name}' is not served by this gateway: no endpoint or route has that name. "
            "GET /v1/models lists them."
        )
    ctx.target = target
    ctx.asked = name
    return target

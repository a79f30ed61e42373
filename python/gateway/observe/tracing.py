"""OpenTelemetry traces (the optional extra `gateway[otel]`): one span per invocation request.

On when an OTLP endpoint is named by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none;
spans go over OTLP/HTTP (protobuf), batched by the SDK (OTEL_BSP_* apply), sampled as
OTEL_TRACES_SAMPLER says (default: follow the caller's, else keep all), named by
OTEL_SERVICE_NAME (default "gateway"). Off, nothing of OpenTelemetry is imported and a request
pays one `if`.

A client's W3C `traceparent` (and `tracestate`) is continued; the request's span is the parent
of every upstream call, whose `traceparent` is added to its headers (proxy/upstream.py calls
`inject` when traces are on). Attributes follow the GenAI semantic conventions.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext
    from gateway.usage import UsageRecord

logger = logging.getLogger("gateway")

SPAN_KEY = "gateway.span"  # the scope key holding the request's span and context token
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
OPERATIONS = {
    "llm/v1/chat": "chat",
    "llm/v1/completions": "text_completion",
    "llm/v1/embeddings": "embeddings",
}
# the conventions' well-known gen_ai.provider.name values; other providers keep their own name
PROVIDER_NAMES = {
    "gemini": "gcp.gemini",
    "vertexai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azuread": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
PROPAGATED = (b"traceparent", b"tracestate", b"baggage")


def wanted(environ: Any = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


@cache
def tracer() -> Tracing | None:
    """This process's tracing, or None when it is off (or the extra is not installed)."""
    if not wanted():
        return None
    try:
        return Tracing()
    except ImportError as exc:
        logger.warning(
            "an OTLP endpoint is set but traces are off: OpenTelemetry is not installed (%s); "
            "install gateway[otel]",
            exc.name,
        )
        return None


class Tracing:
    """Starts a request's span (server/app.py) and, as a sink, ends it with its usage record."""

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        import gateway.proxy.upstream as upstream

        service = os.environ.get("OTEL_SERVICE_NAME") or "gateway"
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        # a worker exits through multiprocessing, which runs no atexit hook: flush the spans here
        multiprocessing.util.Finalize(provider, provider.shutdown, exitpriority=10)
        self.provider = provider
        self.tracer = provider.get_tracer("gateway")
        self._context = context
        self._propagate = propagate
        self._trace = trace
        self._server = trace.SpanKind.SERVER
        self._error = trace.StatusCode.ERROR
        upstream.inject_trace = self.inject

    def start(self, ctx: RequestContext) -> None:
        carrier = {
            name.decode(): value.decode("latin-1")
            for name, value in ctx.scope["headers"]
            if name in PROPAGATED
        }
        parent = self._propagate.extract(carrier) if carrier else None
        span = self.tracer.start_span(
            f"{ctx.method} {ctx.path}",
            context=parent,
            kind=self._server,
            start_time=int(ctx.started_at * 1e9),
        )
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        ctx.scope[SPAN_KEY] = (span, token)

    def inject(self, headers: dict[str, str]) -> dict[str, str]:
        """The upstream call's headers with the current span's `traceparent` (a copy)."""
        carrier = dict(headers)
        self._propagate.inject(carrier)
        return carrier

    def record(self, record: UsageRecord, ctx: RequestContext) -> None:
        started = ctx.scope.pop(SPAN_KEY, None)
        if started is None:
            return
        span, token = started
        try:
            _describe(span, record, ctx)
            if record.error is not None or record.status >= 500:
                span.set_status(self._error)
            span.end()
        finally:
            self._context.detach(token)


def _describe(span: Any, record: UsageRecord, ctx: RequestContext) -> None:
    set_attribute: Callable[[str, Any], None] = span.set_attribute
    set_attribute("http.request.method", record.method)
    set_attribute("url.path", record.path)
    set_attribute("http.response.status_code", record.status)
    set_attribute("gateway.request_id", record.request_id)
    if record.error is not None:
        set_attribute("error.type", record.error)
    if record.endpoint is None:
        return
    operation = OPERATIONS.get(ctx.kind or "", "chat")
    provider = record.provider or ""
    span.update_name(f"{operation} {record.model}" if record.model else operation)
    set_attribute("gen_ai.operation.name", operation)
    set_attribute("gen_ai.provider.name", PROVIDER_NAMES.get(provider, provider))
    set_attribute("gen_ai.system", PROVIDER_NAMES.get(provider, provider))  # the older name
    if record.model:
        set_attribute("gen_ai.request.model", record.model)
    set_attribute("gateway.endpoint", record.endpoint)
    set_attribute("gateway.stream", record.stream)
    if record.total_tokens:
        set_attribute("gen_ai.usage.input_tokens", record.prompt_tokens)
        set_attribute("gen_ai.usage.output_tokens", record.completion_tokens)
        if record.cached_tokens:
            set_attribute("gen_ai.usage.cache_read.input_tokens", record.cached_tokens)
        if record.cache_write_tokens:
            set_attribute("gen_ai.usage.cache_creation.input_tokens", record.cache_write_tokens)
        if record.estimated:
            set_attribute("gateway.usage.estimated", True)
    if record.cost_usd:
        set_attribute("gateway.cost_usd", record.cost_usd)
    if record.ttft_ms is not None and record.stream:
        set_attribute("gateway.time_to_first_token_ms", record.ttft_ms)

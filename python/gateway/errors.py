"""One error vocabulary, end to end.

    GatewayError                  status + client-facing detail; rendered as {"detail": ...}
    ├── RequestValidationError    422, FastAPI-style list of problems
    ├── BadRequest                400
    ├── Unauthorized              401, no valid credential (+ WWW-Authenticate)
    ├── Forbidden                 403, a consumer asking for what it may not have
    ├── NotFound                  404
    ├── MethodNotAllowed          405
    ├── RequestTimeout            408, a request body slower than its deadline; closes the connection
    ├── PayloadTooLarge           413
    ├── InvalidParameter          422, a parameter the provider cannot take (MLflow's messages)
    ├── RateLimited               429, {"error": "Rate limit exceeded: ..."} + Retry-After, RateLimit-*
    ├── BudgetExceeded            429, a budget spent: names it and when it resets + Retry-After
    ├── LimitsUnavailable         503, rate-limit storage down and limits_failure_mode: closed
    ├── DatabaseUnavailable       503, the key database unreachable (admin API, start-up)
    ├── NotImplementedByProvider  501
    └── UpstreamError             the upstream's own status, message passed through
        ├── UpstreamUnavailable   502, connection refused / malformed upstream body
        └── UpstreamTimeout       504
    ConfigError                   a config file that cannot be served (never an HTTP answer)

Every error knows its status and message; nothing else in the code picks status codes.
Messages never include API keys: upstream URLs and request headers are not echoed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


class GatewayError(Exception):
    status = 500
    error_type = "server_error"

    def __init__(self, detail: Any, status: int | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        detail = self.detail
        if isinstance(detail, str):
            return detail
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            return str(detail["message"])
        return orjson.dumps(detail).decode()

    def headers(self) -> list[tuple[bytes, bytes]]:
        return []

    def body(self, style: ApiStyle | bool = False) -> bytes:
        """MLflow's {"detail": ...} envelope; OpenAI routes also carry an "error" object so the
        openai SDK surfaces the message, type and code; Anthropic and Gemini routes get their
        APIs' own error objects, so each SDK raises its own typed error."""
        style = api_style(style)
        if style == OPENAI:
            return orjson.dumps({"detail": self.detail, "error": self.openai_error()})
        if style == ANTHROPIC:
            return orjson.dumps({"type": "error", "error": self.anthropic_error()})
        if style == GEMINI:
            return orjson.dumps({"error": self.gemini_error()})
        return orjson.dumps({"detail": self.detail})

    def openai_error(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.error_type, "code": self.status}

    def anthropic_error(self) -> dict[str, Any]:
        return {"type": ANTHROPIC_TYPES.get(self.status, "api_error"), "message": self.message}

    def gemini_error(self) -> dict[str, Any]:
        return {
            "code": self.status,
            "message": self.message,
            "status": GEMINI_STATUSES.get(self.status, "INTERNAL"),
        }


# the API styles errors render in: each route family's clients expect their API's error shape
ApiStyle = str
MLFLOW, OPENAI, ANTHROPIC, GEMINI = "mlflow", "openai", "anthropic", "gemini"
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def api_style(style: ApiStyle | bool) -> ApiStyle:
    """`True`/`False` (the OpenAI routes or not) as well as a style name."""
    if isinstance(style, bool):
        return OPENAI if style else MLFLOW
    return style


class RequestValidationError(GatewayError):
    status = 422
    error_type = "invalid_request_error"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)

    @property
    def message(self) -> str:
        parts = []
        for err in self.detail:
            loc = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"
            parts.append(f"{loc}: {err.get('msg')}")
        return "; ".join(parts)

    def body(self, style: ApiStyle | bool = False) -> bytes:
        """Rendered as FastAPI's JSONResponse renders it (json.dumps, compact, UTF-8), so an
        echoed `input` such as 1e+300 matches byte for byte. What FastAPI cannot render (NaN,
        a lone surrogate: its 500) comes out as null or a \\u escape instead."""
        style = api_style(style)
        if style in (ANTHROPIC, GEMINI):
            return super().body(style)
        content: dict[str, Any] = {"detail": self.detail}
        if style == OPENAI:
            content["error"] = self.openai_error()
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except ValueError:
            return json.dumps(_finite(content), allow_nan=False, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class BadRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class InvalidParameter(GatewayError):
    """A request a provider or the gateway cannot serve as sent (MLflow's 422 with a message)."""

    status = 422
    error_type = "invalid_request_error"


class Unauthorized(GatewayError):
    """No credential, or one that is unknown, expired or revoked. Never echoes the credential."""

    status = 401
    error_type = "authentication_error"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b'Bearer realm="gateway"')]


class Forbidden(GatewayError):
    """A known consumer asking for what it may not have (an endpoint outside its allowlist, an
    address the IP lists refuse, the admin API with a consumer key)."""

    status = 403
    error_type = "permission_error"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found_error"


class MethodNotAllowed(GatewayError):
    status = 405
    error_type = "invalid_request_error"

    def __init__(self, allow: str = "POST") -> None:
        super().__init__("Method Not Allowed")
        self.allow = allow

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", self.allow.encode())]


class RequestTimeout(GatewayError):
    """A request body that did not arrive in time. The connection is closed with the answer:
    the rest of the body may still be on its way."""

    status = 408
    error_type = "timeout"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"connection", b"close")]


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"

    def __init__(
        self, description: str, retry_after: float, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(f"Rate limit exceeded: {description}")
        self.retry_after = retry_after
        self.extra = extra or []  # RateLimit-Limit / -Remaining / -Reset

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(max(1, int(self.retry_after + 0.999))).encode()), *self.extra]

    def body(self, style: ApiStyle | bool = False) -> bytes:
        # MLflow's body; /v1 (which MLflow never limits) and the other APIs get their own
        if api_style(style) != MLFLOW:
            return super().body(style)
        return orjson.dumps({"error": self.detail})


class BudgetExceeded(GatewayError):
    """A budget whose settled spend has reached its amount: the message names the budget and
    when it resets; Retry-After is the seconds until then. `budget` names it in the usage
    record."""

    status = 429
    error_type = "budget_exceeded"

    def __init__(self, message: str, budget: str, retry_after: float) -> None:
        super().__init__(message)
        self.budget = budget
        self.retry_after = retry_after

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(max(1, math.ceil(self.retry_after))).encode())]


class LimitsUnavailable(GatewayError):
    status = 503
    error_type = "service_unavailable"


class DatabaseUnavailable(GatewayError):
    """The key database cannot be reached or answered with an error. The message names the
    backend (never the password) and the driver's reason with any password scrubbed."""

    status = 503
    error_type = "service_unavailable"


class NotImplementedByProvider(GatewayError):
    status = 501
    error_type = "not_implemented"


# upstream answer headers a client needs to back off: Retry-After and the rate-limit state
PASSED_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit-")
PASSED_HEADERS = frozenset(("retry-after", "retry-after-ms"))


class UpstreamError(GatewayError):
    """An error answer from the provider: its status and message reach the client, with the
    upstream's Retry-After and rate-limit headers."""

    error_type = "upstream_error"
    upstream_headers: list[tuple[bytes, bytes]] = []

    def from_upstream(self, headers: dict[str, str], source: str, upstream_status: int) -> None:
        """Keeps the upstream's back-off headers; a server-side failure (5xx, or an answer in a
        format that cannot be read) names the endpoint and provider it came from."""
        self.upstream_headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
            if name in PASSED_HEADERS or name.startswith(PASSED_HEADER_PREFIXES)
        ]
        if self.status < 500 or source in self.message:
            return
        prefix = f"{source} failed (upstream HTTP {upstream_status}): "
        if isinstance(self.detail, str):
            self.detail = prefix + self.detail
        elif isinstance(self.detail, dict) and set(self.detail) == {"message"}:
            self.detail = {"message": prefix + str(self.detail["message"])}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return self.upstream_headers


class UpstreamUnavailable(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout"


class ConfigError(Exception):
    """A configuration that cannot be served; the message names the endpoint and field."""

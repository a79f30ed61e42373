"""Type stubs for the Rust extension `gateway._native` (sources in rust/src/)."""

from collections.abc import Sequence
from typing import Any, Final, Literal, final

__version__: Final[str]
build_profile: Final[Literal["release", "debug"]]

# -- errors -------------------------------------------------------------------------------

class NativeError(ValueError):
    """Base class of the errors raised by gateway._native."""

class SseError(NativeError):
    """Malformed or oversized Server-Sent-Events stream."""

class ScalingError(NativeError):
    """Request parameter rejected by a ParamScaler rule (the message is client-facing)."""

# -- Server-Sent Events ---------------------------------------------------------------------

DONE_EVENT: Final[bytes]
"""`b"data: [DONE]\\n\\n"`, the OpenAI end-of-stream event."""

@final
class SseParser:
    """Incremental WHATWG SSE parser for one stream (not thread-safe).

    Chunks may be split anywhere (inside a CRLF pair or a UTF-8 character). Lines end with LF,
    CRLF or CR; `:` lines are comments; one space after `field:` is stripped; `data:` lines of
    one event are joined with `\\n`; a blank line dispatches; events without data lines are
    dropped; a leading BOM is ignored.
    """

    def __init__(self, *, max_line_bytes: int = 16777216) -> None:
        """`max_line_bytes` (> 0) bounds one line and one event's data, else `SseError`."""

    @property
    def max_line_bytes(self) -> int: ...
    def feed(self, chunk: bytes) -> list[bytes]:
        """Data of each event completed by `chunk`, in order. On `SseError` the parser resets."""

    def feed_events(self, chunk: bytes) -> list[tuple[str, bytes]]:
        """Like `feed`, as `(event type, data)`; the type defaults to `"message"`."""

    def finish(self) -> list[bytes]:
        """End of stream: dispatch a pending event lacking its final blank line, then reset."""

    def buffered(self) -> int:
        """Bytes held for the incomplete trailing line."""

def encode_event(data: bytes) -> bytes:
    """`b"data: " + data + b"\\n\\n"`, one `data: ` line per line of `data` (LF, CRLF or CR)."""

def encode_events(items: Sequence[bytes]) -> bytes:
    """Concatenation of `encode_event(item)` for each item, built in one allocation."""

# -- parameter scaling -------------------------------------------------------------------

@final
class ParamScaler:
    """Provider parameter rewriting rules, built once, applied per request.

    Each rule is a dict with `"field": str` and any of: `"scale": float`,
    `"only_nonzero": bool`, `"min": float`, `"max": float`, `"default": int | float`,
    `"fallback": str`, `"reject_above": float`, `"reject_message": str`, `"rename": str`,
    `"drop": bool`. Per rule, in order: fallback, default (inserted as is), reject check (on the
    value before scaling), scale, clamp, then rename or drop. Unknown keys or wrong types raise
    `ValueError` naming the rule index.
    """

    def __init__(self, rules: Sequence[dict[str, Any]]) -> None: ...
    def apply(self, payload: dict[str, Any]) -> None:
        """Rewrite `payload` in place; raises `ScalingError` on a rejected or non-numeric value."""

    def scale_value(self, field: str, value: float) -> float:
        """The numeric steps (reject, scale, clamp) of every rule for `field` applied to `value`."""

    def __len__(self) -> int: ...

# -- rate limiting -----------------------------------------------------------------------

@final
class TokenBucket:
    """Up to `capacity` tokens, refilled continuously over `period_seconds`; starts full.

    Thread-safe; exact within one process.
    """

    def __init__(self, capacity: int, period_seconds: float) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def period_seconds(self) -> float: ...
    def try_acquire(self, n: int = 1) -> tuple[bool, int, float]:
        """`(allowed, remaining whole tokens, seconds until a token is available or 0.0)`.

        Nothing is taken when refused; `n > capacity` is never allowed.
        """

    def refund(self, n: int) -> None:
        """Give back `n` tokens (never above capacity)."""

@final
class KeyedTokenBuckets:
    """One `TokenBucket`-like bucket per key, created full on first use.

    Past `max_keys`, full (idle) buckets are evicted first, then the least recently used.
    """

    def __init__(self, capacity: int, period_seconds: float, max_keys: int = 100000) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def period_seconds(self) -> float: ...
    @property
    def max_keys(self) -> int: ...
    def try_acquire(self, key: str, n: int = 1) -> tuple[bool, int, float]: ...
    def refund(self, key: str, n: int) -> None:
        """Give back tokens to `key`'s bucket (no-op for an unknown key)."""

    def __len__(self) -> int: ...

# -- AWS event stream ----------------------------------------------------------------------

class EventStreamError(NativeError):
    """Malformed AWS event stream: bad prelude or message CRC, inconsistent lengths, bad header."""

@final
class EventStreamParser:
    """Incremental AWS event-stream (`application/vnd.amazon.eventstream`) parser for one stream.

    Chunks may split a message anywhere. Both CRC32s (prelude and message) are verified.
    """

    def __init__(self, *, max_message_bytes: int = 16908304) -> None:
        """`max_message_bytes` (>= 16) bounds one message, else `EventStreamError`."""

    @property
    def max_message_bytes(self) -> int: ...
    def feed(self, chunk: bytes) -> list[tuple[dict[str, str], bytes]]:
        """`(string-valued headers, payload)` of each message completed by `chunk`, in order.

        Headers of other types are parsed and left out. On `EventStreamError` the parser resets.
        """

    def buffered(self) -> int:
        """Bytes held for an incomplete trailing message."""

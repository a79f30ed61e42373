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

# -- JSON cost scan ------------------------------------------------------------------------

@final
class JsonLimits:
    """What one JSON body may cost before it is decoded, checked in one pass over its raw bytes
    that builds nothing: nesting depth of arrays and objects, values (array items plus object
    members, at every level) and items of the top-level `messages` array (a key written with
    escapes, `"m\\u0065ssages"`, counts too; a repeated key counts its longest array).

    Not a validator: invalid JSON is measured as far as it goes, never raises. Limits are
    non-negative (`ValueError` otherwise).
    """

    def __init__(self, *, max_depth: int, max_values: int, max_messages: int) -> None: ...
    @property
    def max_depth(self) -> int: ...
    @property
    def max_values(self) -> int: ...
    @property
    def max_messages(self) -> int: ...
    def check(self, body: bytes, release_gil: bool = False) -> tuple[str, int] | None:
        """`None` within the limits, else the first limit crossed: `("depth", deepest nesting in
        the whole body)`, `("values", max_values + 1)` or `("messages", max_messages + 1)`.
        `release_gil` runs the scan without the GIL (from a worker thread)."""

def json_stats(body: bytes) -> tuple[int, int, int]:
    """`(depth, values, messages)` of `body`, unlimited (measurements and tests)."""

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

# -- rate limits shared by the worker processes of one instance --------------------------

class LimitTableError(NativeError):
    """The shared rate-limit table cannot serve: full, or not a valid table file."""

# `(allowed, remaining whole tokens, retry_after seconds, reset seconds)`: retry_after is the
# wait until the refused request would fit (for an admitted one, until one more token is
# there, 0.0 while any remain); reset is the wait until the bucket is full again.
Verdict = tuple[bool, int, float, float]

@final
class SharedLimits:
    """A memory-mapped table of token buckets and in-flight counters (rust/src/ratelimit/shared.rs).

    Every worker mapping the same file shares every bucket: a decision is a few lock-free
    atomic operations (CAS on a one-word GCRA state) on the mapping. Buckets are found by a
    keyed SipHash of their name (client keys are never stored raw). Buckets without a client
    key are pinned to their slot; per-client buckets are evicted, most refilled first, when
    their probe window is full.
    """

    max_workers: Final[int]

    @staticmethod
    def create(path: str, bucket_slots: int = 65536, concurrency_slots: int = 1024) -> SharedLimits:
        """Create the file (which must not exist, mode 0600) and map it. Slots: powers of two."""

    @staticmethod
    def open(path: str) -> SharedLimits:
        """Map a file made by `create`; `LimitTableError` if it is not one."""

    @staticmethod
    def private(bucket_slots: int = 65536, concurrency_slots: int = 1024) -> SharedLimits:
        """A table visible to this process only."""

    @property
    def path(self) -> str | None: ...
    @property
    def bucket_slots(self) -> int: ...
    @property
    def concurrency_slots(self) -> int: ...
    @property
    def worker_index(self) -> int | None: ...
    def register_worker(self, ident: int) -> int:
        """Claim a worker record for this handle (`ident` != 0 names the process)."""

    def workers(self) -> list[tuple[int, int]]:
        """`(index, ident)` of every claimed worker record."""

    def reap_worker(self, index: int, ident: int) -> int | None:
        """Free a dead worker's record, giving back its in-flight places (how many), or None
        if the record no longer holds `ident`."""

    def occupancy(self) -> tuple[int, int]:
        """`(bucket slots, concurrency slots)` in use."""

    def bucket(self, name: str, capacity: int, period_seconds: float) -> SharedBucket:
        """The bucket `name` (one for everyone); `capacity` tokens refilled over the period."""

    def keyed_bucket(self, name: str, capacity: int, period_seconds: float) -> KeyedSharedBucket: ...
    def concurrency(self, name: str, limit: int) -> SharedConcurrency: ...

@final
class SharedBucket:
    """Starts full; `capacity` tokens at once, one more every `period / capacity`."""

    @property
    def capacity(self) -> int: ...
    @property
    def period_seconds(self) -> float: ...
    def try_acquire(self, n: int = 1) -> Verdict:
        """Take `n` tokens if all are there; a refusal takes nothing."""

    def refund(self, n: int) -> None:
        """Give `n` tokens back (never beyond full)."""

    def charge(self, n: int) -> None:
        """Take `n` tokens unconditionally (usage known after the fact; may leave debt)."""

    def peek(self) -> Verdict: ...

@final
class KeyedSharedBucket:
    """One `SharedBucket` per client key, created full on first use."""

    @property
    def capacity(self) -> int: ...
    @property
    def period_seconds(self) -> float: ...
    def try_acquire(self, key: str, n: int = 1) -> Verdict: ...
    def refund(self, key: str, n: int) -> None: ...
    def charge(self, key: str, n: int) -> None: ...
    def peek(self, key: str) -> Verdict: ...

@final
class SharedConcurrency:
    """In-flight requests under one name, capped at `limit` (exact: CAS on the total)."""

    @property
    def limit(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    def try_enter(self) -> tuple[bool, int]:
        """`(entered, in flight)`; a refusal takes nothing."""

    def leave(self) -> None: ...

# -- expiring counters shared by the worker processes of one instance (budgets) ---------------

class CounterTableError(NativeError):
    """The shared counter table cannot serve: full, locked, or not a valid table file."""

@final
class SharedCounters:
    """A memory-mapped table of expiring i64 counters (rust/src/counters/table.rs).

    Every worker mapping the same file shares every counter; an addition is an atomic
    `fetch_add`, so concurrent workers never lose one. Counters are found by two keyed
    SipHashes of their key (128 bits); a slot whose `expires_at` has passed is reused. Calls
    release the GIL.
    """

    @staticmethod
    def create(path: str, slots: int = 65536) -> SharedCounters:
        """Create the file (which must not exist, mode 0600) and map it. Slots: a power of two,
        at least 64."""

    @staticmethod
    def open(path: str) -> SharedCounters:
        """Map a file made by `create`; `CounterTableError` if it is not one."""

    @staticmethod
    def private(slots: int = 65536) -> SharedCounters:
        """A table visible to this process only."""

    @property
    def path(self) -> str | None: ...
    @property
    def slots(self) -> int: ...
    def occupancy(self) -> int:
        """Slots holding a counter, live or expired."""

    def totals(self, keys: list[str], now: int) -> list[int]:
        """The total of each key at `now` (unix seconds): 0 if absent or expired."""

    def add(self, items: list[tuple[str, int]], amount: int, now: int) -> list[int]:
        """Add `amount` to each `(key, expires_at)` and return the new totals; an item whose
        `expires_at <= now` counts nothing (total 0); `expires_at` only moves later.
        `CounterTableError` (and nothing added) if a new counter finds no free slot."""

class ChunkedEncodingError(NativeError): ...
class ChunkedTrailersTooLarge(NativeError): ...

class ChunkedDecoder:
    """Incremental decoder of one HTTP/1.1 chunked body (rust/src/chunked/)."""

    def __init__(self, *, max_line: int, trailer_bytes: int, trailer_lines: int) -> None: ...
    def feed(self, read: bytes) -> tuple[bytes, bool, int]:
        """`(data, done, rest)`: the chunk data `read` completes, joined; whether the body
        ended; how many bytes of `read` came after its end."""
    @property
    def done(self) -> bool: ...

class ChatStreamRelay:
    """One OpenAI-shaped chat stream relayed to the client (rust/src/chatstream/): SSE events
    in, the client's SSE bytes out, one call per upstream read."""

    def __init__(self, provider: str, *, include_usage: bool, stream_ids: bool, max_line_bytes: int) -> None:
        """`stream_ids`: chunks that come without an id get the stream's own (OpenAI routes)."""
    def feed(self, data: bytes) -> tuple[bytes, bytes | None, bool]:
        """`(client bytes, the data of an event left to Python or None, [DONE] seen)`; raises
        SseError when a line or event outgrows `max_line_bytes`."""
    def finish(self) -> tuple[bytes, bytes | None, bool]:
        """The upstream's body ended: a last event without its blank line still counts."""
    def tail(self) -> bytes:
        """The held chunk that carries `finish_reason` (with the usage unless the client asked
        for its own usage chunk), then that usage chunk."""
    def flush_held(self) -> bytes:
        """The held chunk as it is, when the stream fails."""
    @property
    def usage(self) -> bytes | None:
        """The last usage reported, as JSON."""
    @property
    def chars(self) -> int: ...
    @property
    def produced(self) -> bool: ...

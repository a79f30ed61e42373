"""Ceilings on what an upstream answer may cost, shared by both transports (http1.py, aiohttp).

* `BodyLimits`: the response size cap (decompressed), the decompression ratio cap and the
  SSE event cap, read from settings.py once per client.
* `Inflater`: gzip/deflate decoding in bounded steps. Output is produced at most `step` bytes at
  a time and only when the reader asks for it, so a 1 MB bomb that inflates to 1 GiB never sits
  in memory whole. A body read whole is bounded by the response cap; a stream has no size
  bound, so past `RATIO_FLOOR` bytes of output a ratio above the cap ends it.
* `ResponseTooLarge`: a `ProtocolError` whose message says which limit was hit and names its
  setting; the client prefixes the endpoint and provider and answers 502.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

MIB = 1024 * 1024
# the decompression ratio is judged only once this much has been inflated, so that a small,
# very repetitive (legitimately compressible) answer is never refused
RATIO_FLOOR = MIB
INFLATE_STEP = 64 * 1024
INPUT_STEP = 16 * 1024  # compressed bytes handed to zlib at a time (its leftover is copied)


class ProtocolError(Exception):
    """The upstream broke HTTP/1.1 framing or closed the connection early."""


class ResponseTooLarge(ProtocolError):
    """An answer over one of the configured ceilings; the message names the setting."""


def size_text(size: int) -> str:
    if size >= MIB and size % MIB == 0:
        return f"{size // MIB} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"


# the settings object the last BodyLimits was made from, and it
_FROM_SETTINGS: list[tuple[object, BodyLimits | None]] = [(None, None)]


@dataclass(frozen=True)
class BodyLimits:
    max_response_bytes: int = 64 * MIB  # GATEWAY_MAX_RESPONSE_BYTES: a whole (non-streamed) answer
    max_stream_event_bytes: int = 8 * MIB  # GATEWAY_MAX_STREAM_EVENT_BYTES: one SSE line / event
    max_decompression_ratio: float = 200.0  # GATEWAY_MAX_DECOMPRESSION_RATIO (0: no ratio check)

    @classmethod
    def from_settings(cls) -> BodyLimits:
        from gateway.settings import settings

        current = settings()
        made_for, limits = _FROM_SETTINGS[0]
        if made_for is not current:  # once per settings object (every stream asks)
            limits = cls(
                max_response_bytes=current.max_response_bytes,
                max_stream_event_bytes=current.max_stream_event_bytes,
                max_decompression_ratio=current.max_decompression_ratio,
            )
            _FROM_SETTINGS[0] = (current, limits)
        assert limits is not None
        return limits

    def response_too_large(self) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"sent a response larger than the {size_text(self.max_response_bytes)} limit "
            "(GATEWAY_MAX_RESPONSE_BYTES)."
        )

    def event_too_large(self) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"sent a stream event (or line) larger than the {size_text(self.max_stream_event_bytes)} "
            "limit (GATEWAY_MAX_STREAM_EVENT_BYTES)."
        )


class Inflater:
    """Incremental gzip / zlib-deflate decoding with bounded steps and a ratio cap."""

    __slots__ = ("_consumed", "_flushed", "_max_ratio", "_offset", "_pending", "_produced", "_zlib")

    def __init__(self, max_ratio: float) -> None:
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
        self._max_ratio = max_ratio
        self._pending = b""  # compressed input; inflated up to _offset
        self._offset = 0
        self._consumed = 0  # compressed bytes zlib has taken
        self._produced = 0  # bytes inflated
        self._flushed = False

    @staticmethod
    def for_encoding(content_encoding: str, max_ratio: float) -> Inflater | None:
        encoding = content_encoding.strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            return Inflater(max_ratio)
        return None

    @property
    def pending(self) -> int:
        """Compressed bytes held back until the reader asks for more output."""
        return len(self._pending) - self._offset

    def feed(self, data: bytes) -> None:
        if self._offset < len(self._pending):
            self._pending = self._pending[self._offset :] + data
        else:
            self._pending = data
        self._offset = 0

    def read(self, most: int = INFLATE_STEP) -> bytes:
        """Up to `most` inflated bytes from the input fed so far; b"" once it is all used."""
        decoder = self._zlib
        view = memoryview(self._pending)
        try:
            while self._offset < len(view) and not decoder.eof:
                piece = view[self._offset : self._offset + INPUT_STEP]
                try:
                    out = decoder.decompress(piece, most)
                except zlib.error:
                    raise ProtocolError("invalid compressed body") from None
                used = len(piece) - len(decoder.unconsumed_tail)
                self._offset += used
                self._consumed += used
                if out:
                    self._produced += len(out)
                    self._check_ratio()
                    return out
        finally:
            view.release()
        # all used (bytes after the end of the compressed stream are ignored)
        self._pending, self._offset = b"", 0
        return b""

    def flush(self) -> bytes:
        """What zlib still holds once all input has been read (the end of the body)."""
        if self._flushed:
            return b""
        self._flushed = True
        try:
            tail = self._zlib.flush()
        except zlib.error:
            raise ProtocolError("invalid compressed body") from None
        self._produced += len(tail)
        return tail

    def _check_ratio(self) -> None:
        ratio = self._max_ratio
        if ratio and self._produced > RATIO_FLOOR and self._produced > ratio * max(self._consumed, 1):
            raise ResponseTooLarge(
                f"sent a compressed body that inflates more than {ratio:g} times its size "
                "(GATEWAY_MAX_DECOMPRESSION_RATIO), refused as a decompression bomb."
            )

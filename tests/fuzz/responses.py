"""Structure-aware HTTP/1.1 responses for the fuzzers, built from a stream of choices.

The same `build` drives atheris (choices from its FuzzedDataProvider) and hypothesis (choices
drawn from strategies). A response is built well-formed, then zero or more mutations are applied
to its head, its framing (Content-Length, Transfer-Encoding, chunk sizes, trailers), its
encoding (gzip / deflate, truncated or corrupted) or what follows it. `Case.expected` is the
decoded body when no mutation was applied: then any split of the wire must parse to it.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Protocol


class Chooser(Protocol):
    def int(self, low: int, high: int) -> int: ...

    def bytes(self, most: int) -> bytes: ...


@dataclass
class Case:
    wire: bytes
    cuts: list[int]
    expected: tuple[int, bytes] | None  # (status, body) when the response is well-formed
    max_body: int
    slow_reader: bool
    description: str


STATUS = [200, 200, 200, 201, 204, 304, 400, 429, 500, 503]
HEADER_NAMES = [b"X-Request-Id", b"Content-Type", b"Set-Cookie", b"Cache-Control", b"X-Ratelimit-Remaining"]


@dataclass
class Draft:
    framing: str
    compressed: bool
    head_lines: list[bytes]
    payload: bytes
    interim: bytes = b""
    trailing: bytes = b""


def build(c: Chooser) -> Case:
    status = STATUS[c.int(0, len(STATUS) - 1)]
    body = _body(c)
    encoding = ["identity", "gzip", "deflate"][c.int(0, 2)]
    encoded = body
    if encoding == "gzip":
        encoded = gzip.compress(body, compresslevel=c.int(0, 9), mtime=0)
    elif encoding == "deflate":
        encoded = zlib.compress(body, c.int(0, 9))
    framing = ["length", "chunked", "close"][c.int(0, 2)]
    headers = [HEADER_NAMES[c.int(0, len(HEADER_NAMES) - 1)] + b": " + _token(c) for _ in range(c.int(0, 6))]
    if encoding != "identity":
        headers.append(b"Content-Encoding: " + encoding.encode())
    version = b"HTTP/1.1"
    payload = encoded
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(encoded))
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        payload = _chunked(c, encoded)
    else:
        version = [b"HTTP/1.0", b"HTTP/1.1"][c.int(0, 1)]
        if version == b"HTTP/1.1":
            headers.append(b"Connection: close")
    draft = Draft(framing, encoding != "identity", [b"%s %d OK" % (version, status), *headers], payload)
    draft.interim = b"HTTP/1.1 100 Continue\r\n\r\n" * c.int(0, 2)
    notes = []
    for _ in range(c.int(0, 3)):  # 0: well-formed
        kind = c.int(0, len(MUTATIONS) - 1)
        notes.append(MUTATIONS[kind].__name__)
        MUTATIONS[kind](c, draft)
    wire = draft.interim + b"\r\n".join(draft.head_lines) + b"\r\n\r\n" + draft.payload + draft.trailing
    expected = None if notes else (status, b"" if status in (204, 304) else body)
    cuts = _cuts(c, len(wire))
    max_body = [0, 0, 0, 1024, 65536][c.int(0, 4)]
    # over the cap (decoded), or a Content-Length over it (refused before the body is read)
    over = max_body and (len(body) > max_body or (framing == "length" and len(encoded) > max_body))
    if over and expected is not None and expected[1]:
        expected = None
    slow = c.int(0, 1) == 1
    description = f"{framing} {encoding} status={status} body={len(body)} " + ", ".join(notes)
    return Case(wire, cuts, expected, max_body, slow, description)


def _pick(c: Chooser, options: list[bytes]) -> bytes:
    return options[c.int(0, len(options) - 1)]


def arbitrary_header_line(c: Chooser, d: Draft) -> None:
    d.head_lines[c.int(0, len(d.head_lines) - 1)] = c.bytes(64)


def content_length(c: Chooser, d: Draft) -> None:
    values = [b"-1", b"0", b"1", b"+5", b" 7 ", b"5, 6", b"3, 3", b"1e3", b"\xb2", b"99999999999999999999"]
    d.head_lines.append(b"Content-Length: " + _pick(c, values))


def transfer_encoding(c: Chooser, d: Draft) -> None:
    values = [b"chunked", b"gzip, chunked", b"chunked, chunked", b"identity", b"chunked;x", b"Chunked"]
    d.head_lines.append(b"Transfer-Encoding: " + _pick(c, values))


def chunk_size(c: Chooser, d: Draft) -> None:
    end = d.payload.find(b"\r\n")
    if d.framing == "chunked" and end >= 0:
        sizes = [b"-1", b"0x10", b"1_0", b"ffffffffffffffff", b"", b" ", b"g", b"7fffffff", b"1", b"FFFF"]
        d.payload = _pick(c, sizes) + d.payload[end:]


def cut_short(c: Chooser, d: Draft) -> None:
    d.payload = d.payload[: max(0, len(d.payload) - c.int(1, 64))]


def garbage_after(c: Chooser, d: Draft) -> None:
    d.trailing = c.bytes(64)


def corrupt_compressed(c: Chooser, d: Draft) -> None:
    if d.compressed and d.payload:
        index = c.int(0, len(d.payload) - 1)
        d.payload = d.payload[:index] + bytes([d.payload[index] ^ 0x5A]) + d.payload[index + 1 :]


def many_header_lines(c: Chooser, d: Draft) -> None:
    d.head_lines += [b"a: b"] * c.int(100, 400)


def huge_header(c: Chooser, d: Draft) -> None:
    d.head_lines.append(b"X-Big: " + b"v" * c.int(1000, 70_000))


def status_line(c: Chooser, d: Draft) -> None:
    lines = [b"HTTP/1.1 2000 OK", b"HTTP/2 200 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 20", b"ICY 200 OK"]
    d.head_lines[0] = _pick(c, lines)


def odd_header_line(c: Chooser, d: Draft) -> None:  # obs-fold, bare LF, NUL, space before ':'
    d.head_lines.append(_pick(c, [b" folded", b"X-A: a\nb", b"X-A: a\x00", b"X-A : a", b":empty"]))


def endless_interim(c: Chooser, d: Draft) -> None:
    d.interim = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" * c.int(10, 3000)


def bytes_in_framing(c: Chooser, d: Draft) -> None:
    index = c.int(0, len(d.payload))
    d.payload = d.payload[:index] + c.bytes(32) + d.payload[index:]


def odd_header_name(c: Chooser, d: Draft) -> None:
    d.head_lines.append(c.bytes(16) + b": x")


MUTATIONS = [
    arbitrary_header_line,
    content_length,
    transfer_encoding,
    chunk_size,
    cut_short,
    garbage_after,
    corrupt_compressed,
    many_header_lines,
    huge_header,
    status_line,
    odd_header_line,
    endless_interim,
    bytes_in_framing,
    odd_header_name,
]


def _body(c: Chooser) -> bytes:
    kind = c.int(0, 3)
    if kind == 0:
        return b""
    if kind == 1:
        return c.bytes(2048)
    if kind == 2:  # SSE-like text, repetitive
        event = b'data: {"choices": [{"delta": {"content": "%s"}}]}\n\n' % _token(c)
        return event * c.int(1, 2000)
    return bytes([c.int(0, 255)]) * c.int(1, 300_000)  # crosses the high-water mark


def _token(c: Chooser) -> bytes:
    raw = c.bytes(24)
    return bytes(b for b in raw if 0x21 <= b < 0x7F and b not in b'",\\') or b"v"


def _chunked(c: Chooser, data: bytes) -> bytes:
    # at most 40 chunks: sizes from cut points, so an exhausted input does not mean 1-byte chunks
    cuts = {c.int(1, max(1, len(data) - 1)) for _ in range(c.int(0, 39))}
    points = sorted({point for point in cuts if point < len(data)} | {len(data)})
    out = []
    start = 0
    for point in points:
        if point <= start:
            continue
        size = point - start
        extension = b";ext=1" if c.int(0, 7) == 0 else b""
        digits = b"%x" % size if c.int(0, 1) else b"%X" % size
        out.append(digits + extension + b"\r\n" + data[start:point] + b"\r\n")
        start = point
    trailers = b"X-Trailer: t\r\n" * c.int(0, 2) if c.int(0, 3) == 0 else b""
    out.append(b"0\r\n" + trailers + b"\r\n")
    return b"".join(out)


def _cuts(c: Chooser, length: int) -> list[int]:
    mode = c.int(0, 3)
    if mode == 0 or length == 0:
        return []
    if mode == 1 and length < 4000:  # byte by byte
        return list(range(1, length))
    return [c.int(1, max(1, length - 1)) for _ in range(c.int(1, 24))]

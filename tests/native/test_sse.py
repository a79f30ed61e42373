"""SSE parser and encoder of the Rust extension."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._native import DONE_EVENT, NativeError, SseError, SseParser, encode_event, encode_events

STREAM = (
    b"\xef\xbb\xbf: keep-alive\r\n"
    b"event: delta\r\n"
    b'data: {"a":"\xc3\xa9\xe2\x82\xac"}\r\n'
    b"\r\n"
    b"data:first\rdata: second\r\r"
    b"id: 7\nretry: 10\nunknown: x\n"
    b"data\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = ['{"a":"é€"}'.encode(), b"first\nsecond", b"", b"[DONE]"]
EXPECTED_EVENTS = [("delta", EXPECTED[0]), *(("message", d) for d in EXPECTED[1:])]


def feed_all(chunks: list[bytes]) -> list[bytes]:
    parser = SseParser()
    out: list[bytes] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def test_whole_stream() -> None:
    assert feed_all([STREAM]) == EXPECTED


def test_split_at_every_byte_position() -> None:
    for i in range(len(STREAM) + 1):
        assert feed_all([STREAM[:i], STREAM[i:]]) == EXPECTED, i


def test_byte_by_byte() -> None:
    assert feed_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_feed_events_names() -> None:
    parser = SseParser()
    events = [e for i in range(len(STREAM)) for e in parser.feed_events(STREAM[i : i + 1])]
    assert events == EXPECTED_EVENTS
    assert all(isinstance(name, str) and isinstance(data, bytes) for name, data in events)


def test_crlf_split_across_chunks() -> None:
    assert feed_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [b"a\nb"]


def test_cr_only_line_endings() -> None:
    assert feed_all([b"data: a\rdata: b\r\rdata: c\r", b"\r"]) == [b"a\nb", b"c"]


def test_comments_and_event_without_data() -> None:
    assert feed_all([b": ping\n\nevent: x\n\n:\ndata: y\n\n"]) == [b"y"]


def test_only_one_leading_space_is_stripped() -> None:
    assert feed_all([b"data:x\ndata:  y\n\n"]) == [b"x\n y"]


def test_bom_split_across_chunks() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    for i in range(4):
        assert feed_all([stream[:i], stream[i:]]) == [b"x"]


def test_done_event() -> None:
    assert DONE_EVENT == b"data: [DONE]\n\n"
    assert feed_all([DONE_EVENT]) == [b"[DONE]"]


def test_finish_dispatches_pending_event_and_resets() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\n\ndata: b\ndata: c") == [b"a"]
    assert parser.buffered() == len(b"data: c")
    assert parser.finish() == [b"b\nc"]
    assert parser.buffered() == 0
    assert parser.finish() == []
    parser.feed(b"event: only-a-name\n")
    assert parser.finish() == []


def test_max_line_bytes() -> None:
    parser = SseParser(max_line_bytes=8)
    assert parser.max_line_bytes == 8
    assert parser.feed(b"data: 12") == []
    assert parser.buffered() == 8
    with pytest.raises(SseError, match="max_line_bytes"):
        parser.feed(b"3")
    assert parser.buffered() == 0
    assert parser.feed(b"data: 1\n\n") == [b"1"]
    assert issubclass(SseError, NativeError)
    assert issubclass(SseError, ValueError)


def test_default_max_line_bytes_and_validation() -> None:
    assert SseParser().max_line_bytes == 16 * 1024 * 1024
    with pytest.raises(ValueError, match="max_line_bytes"):
        SseParser(max_line_bytes=0)
    with pytest.raises(TypeError):
        SseParser(8)  # type: ignore[call-arg]


def test_encode_event() -> None:
    assert encode_event(b'{"x":1}') == b'data: {"x":1}\n\n'
    assert encode_event(b"") == b"data: \n\n"
    assert encode_event(b"a\nb") == b"data: a\ndata: b\n\n"
    assert encode_event(b"a\r\nb\rc") == b"data: a\ndata: b\ndata: c\n\n"


def test_encode_events() -> None:
    assert encode_events([]) == b""
    assert encode_events([b"1", b"2\n3"]) == b"data: 1\n\ndata: 2\ndata: 3\n\n"
    assert encode_events((b"x",)) == encode_event(b"x")
    with pytest.raises(TypeError):
        encode_events(["str"])  # type: ignore[list-item]


payloads = st.lists(st.binary(max_size=40).filter(lambda b: b"\r" not in b), max_size=6)


@given(payloads, st.lists(st.integers(min_value=0), max_size=6))
def test_round_trip_with_any_split(items: list[bytes], cuts: list[int]) -> None:
    wire = encode_events(items)
    positions = sorted(c % (len(wire) + 1) for c in cuts)
    chunks = [wire[a:b] for a, b in zip([0, *positions], [*positions, len(wire)], strict=True)]
    assert feed_all(chunks) == items


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_never_crash(chunks: list[bytes]) -> None:
    parser = SseParser(max_line_bytes=32)
    for chunk in chunks:
        try:
            for data in parser.feed(chunk):
                assert isinstance(data, bytes)
        except SseError:
            pass
        assert parser.buffered() <= 32
    parser.finish()

"""Bounded fuzzing of the upstream HTTP/1.1 client's response parser (tests/fuzz/), on every
test run, with fixed seeds; and the regressions the fuzzers and the review found.

A longer run: `python -m tests.fuzz.fuzz_http1 -max_total_time=600 -seed=1` (README,
"Limits and safety").
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.proxy.http1 import MAX_HEAD_BYTES, MAX_HEAD_LINES, ProtocolError
from tests.fuzz.harness import check, feed
from tests.fuzz.responses import build

ROOT = Path(__file__).resolve().parents[2]


class HypothesisChooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def int(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def bytes(self, most: int) -> bytes:
        return self.data.draw(st.binary(max_size=most))


FUZZ = settings(
    max_examples=300,
    derandomize=True,  # a fixed seed: the same examples on every run
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(FUZZ, max_examples=600)
@given(st.data())
def test_structure_aware_responses(data: st.DataObject) -> None:
    case = build(HypothesisChooser(data))
    check(case.wire, case.cuts, case.max_body, case.slow_reader, case.expected)


@FUZZ
@given(st.binary(max_size=4096), st.lists(st.integers(1, 4096), max_size=16), st.booleans())
def test_raw_bytes(wire: bytes, cuts: list[int], slow: bool) -> None:
    check(wire, cuts, slow_reader=slow)


@FUZZ
@given(st.binary(max_size=512), st.lists(st.integers(1, 4096), max_size=8))
def test_raw_bytes_after_a_valid_head(tail: bytes, cuts: list[int]) -> None:
    for head in (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 40\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n",
    ):
        check(head + tail, cuts)


def test_atheris_bounded_run(tmp_path: Path) -> None:
    """The libFuzzer harness itself, for a fixed number of inputs from a fixed seed (~15 s,
    cut at 20 s on a busy machine)."""
    pytest.importorskip("atheris")
    command = [sys.executable, "-m", "tests.fuzz.fuzz_http1", "-seed=1", "-runs=20000"]
    command += ["-max_total_time=20", "-timeout=10", f"-artifact_prefix={tmp_path}/"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr


# -- what the fuzzers and the review found ------------------------------------------------


def test_endless_interim_heads_in_one_read() -> None:
    """Thousands of `100 Continue` heads in one read recursed once per head (RecursionError
    out of data_received, the request hung until its timeout)."""
    wire = b"HTTP/1.1 100 Continue\r\n\r\n" * 5000 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    result = feed(wire, [len(wire)])
    assert isinstance(result.error, ProtocolError) and "header" in str(result.error)
    few = b"HTTP/1.1 100 Continue\r\n\r\n" * 3 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert feed(few, [len(few)]).body == b"ok"


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab",  # '²'.isdigit() is True
        b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xd9\xa3\r\n\r\nabc",
    ],
)
def test_non_ascii_digits_are_a_protocol_error(wire: bytes) -> None:
    """int() refused what str.isdigit() accepted: a ValueError escaped the parser."""
    assert isinstance(feed(wire).error, ProtocolError)


def test_head_byte_by_byte_is_linear() -> None:
    """The blank line was searched for from the start of the head on every read: a 64 KiB head
    sent one byte at a time cost O(n^2)."""
    lines = [b"X-H%d: %s" % (i, b"v" * 200) for i in range(MAX_HEAD_LINES - 10)]
    wire = b"HTTP/1.1 200 OK\r\n" + b"\r\n".join(lines)[: MAX_HEAD_BYTES - 200] + b"\r\n\r\n"
    started = time.perf_counter()
    result = feed(wire + b"ok", list(range(1, len(wire))), eof=True)
    assert result.status == 200 and result.error is None
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "trailer",
    [b"X-T: " + b"t" * 100_000, b"a: b\r\n" * 10_000],
    ids=["one-endless-line", "endless-lines"],
)
def test_trailers_are_bounded(trailer: bytes) -> None:
    """Trailer lines were read without a bound (one without CRLF grew the buffer forever)."""
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + trailer
    result = feed(wire, list(range(1000, len(wire), 1000)))
    assert isinstance(result.error, ProtocolError) and "trailers" in str(result.error)
    assert result.most_buffered < MAX_HEAD_BYTES + 2000


@pytest.mark.parametrize(
    "line",
    [b"X-A: a\nb: c", b"X-A: a\x00", b" folded", b"X-A : a", b"\x00: a", b"Retry-After: 1\rX: 2"],
)
def test_malformed_header_lines(line: bytes) -> None:
    """Bare CR / LF and NUL once passed into header values (some reach the client)."""
    wire = b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n"
    assert isinstance(feed(wire).error, ProtocolError)


@pytest.mark.parametrize(
    ("encoding", "framed"),
    [
        (b"gzip, chunked", False),
        (b"chunked, chunked", False),
        (b"identity", False),
        (b"Chunked", True),
        (b" chunked ", True),
    ],
)
def test_transfer_encodings(encoding: bytes, framed: bool) -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + encoding + b"\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    result = feed(wire)
    if framed:
        assert result.body == b"ok" and result.complete
    else:
        assert isinstance(result.error, ProtocolError)


def test_gzip_stream_paused_reader_does_not_deadlock() -> None:
    """Compressed input held back while the reader is behind is inflated when it reads again,
    and the socket resumes once it is used up, whatever the split."""
    import gzip

    payload = bytes(range(256)) * 4000  # ~1 MiB, compresses ~250:1... and crosses high water
    body = gzip.compress(payload)
    wire = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for cuts in ([], list(range(100, len(wire), 100)), [len(wire) - 1]):
        result = feed(wire, cuts, slow_reader=True)
        assert result.error is None and result.body == payload

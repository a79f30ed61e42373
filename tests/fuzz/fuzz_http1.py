"""atheris (libFuzzer) fuzzer for the upstream HTTP/1.1 client's response parser.

    python -m tests.fuzz.fuzz_http1 -max_total_time=600 -seed=1          # 10 minutes
    python -m tests.fuzz.fuzz_http1 -runs=20000 -seed=1 corpus_dir/      # a fixed number of inputs

Every libFuzzer flag works (-jobs, -workers, -dict, -rss_limit_mb, ...). Each input is either raw
bytes (cut at points drawn from its first bytes) or, most of the time, a structure-aware response
(responses.py: valid heads with mutated Content-Length, Transfer-Encoding, chunk sizes, trailers,
gzip / deflate bodies) fed to one Http1Connection (harness.py). A crash is any exception other
than ProtocolError, a response that never ends after the connection closes, buffering past its
bound, an outcome that depends on where the reads were cut, or a well-formed response that does
not parse to its body.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["gateway.proxy"]):
    from gateway.proxy import http1, limits  # noqa: F401  (instrumented for coverage)

from tests.fuzz.harness import check
from tests.fuzz.responses import build


class FdpChooser:
    def __init__(self, fdp: atheris.FuzzedDataProvider) -> None:
        self.fdp = fdp

    def int(self, low: int, high: int) -> int:
        return int(self.fdp.ConsumeIntInRange(low, high))

    def bytes(self, most: int) -> bytes:
        return bytes(self.fdp.ConsumeBytes(self.fdp.ConsumeIntInRange(0, most)))


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeIntInRange(0, 3) == 0:  # raw bytes
        cuts = [fdp.ConsumeIntInRange(1, 4096) for _ in range(fdp.ConsumeIntInRange(0, 16))]
        slow = fdp.ConsumeBool()
        check(fdp.ConsumeBytes(fdp.remaining_bytes()), cuts, slow_reader=slow)
        return
    case = build(FdpChooser(fdp))
    check(case.wire, case.cuts, case.max_body, case.slow_reader, case.expected)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

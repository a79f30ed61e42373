"""A one-line progress bar on stderr: shown on a terminal, or when asked for with --progress."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


class ProgressBar:
    def __init__(self, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled
        self.stream = stream
        self.label = ""
        self.warmup = self.duration = 0.0
        self.max_requests: int | None = None
        self.last_requests = 0
        self.last_at = 0.0
        self.rate = 0.0
        self.drawn = False

    def begin(self, label: str, warmup: float, duration: float, max_requests: int | None) -> None:
        self.label, self.warmup, self.duration, self.max_requests = label, warmup, duration, max_requests
        self.last_requests, self.last_at, self.rate = 0, time.perf_counter(), 0.0

    def update(self, elapsed: float, requests: int, errors: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now > self.last_at:
            instant = (requests - self.last_requests) / (now - self.last_at)
            self.rate = instant if self.rate == 0 else 0.7 * self.rate + 0.3 * instant
        self.last_requests, self.last_at = requests, now
        total = self.warmup + self.duration
        if self.max_requests:
            done = min(1.0, requests / self.max_requests)
        else:
            done = min(1.0, elapsed / total) if total > 0 else 1.0
        filled = int(done * WIDTH)
        phase = "warm-up" if elapsed < self.warmup else f"{min(elapsed, total):5.1f}/{total:.0f} s"
        line = (
            f"\r{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {phase}  "
            f"{requests:,} req  {self.rate:,.0f} req/s  {errors:,} err"
        )
        self.stream.write(line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False

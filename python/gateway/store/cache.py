"""Each worker's copy of the live consumer keys: a dict from SHA-256 to `KeyRecord`.

`lookup(secret)` is one hash and one dict probe; it never touches the database, so a request
never waits on it and a database outage does not stop keys already known from working. The
caller checks expiry against the record (`record.expired()`), and the endpoint allowlist
(`record.allows(name)`).

`run(store)` polls `store.changes_since(revision)` every `interval` seconds (0.25 by default) in
a thread. A revocation committed at time T is therefore refused by every worker that shares the
database within about one interval plus one query: well inside 1 s for the workers of a host
and 2 s for every host on a shared PostgreSQL, even with a slow query. A failing poll is logged
(at most once every 10 s), the cache keeps what it has, and polling goes on.

A worker that writes (the admin API) applies its change at once with `put(record)`, without
moving the poll's cursor, so the poll still picks up what other workers and hosts wrote.
Records carry the revision they were written at, and an older record never replaces a newer
one, whatever order they arrive in.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable

from gateway.errors import GatewayError
from gateway.store.keys import SECRET_PREFIX, KeyRecord, KeyStore, hash_secret

logger = logging.getLogger("gateway.store")
POLL_INTERVAL_SECONDS = 0.25
ERROR_LOG_SECONDS = 10.0


class KeyCache:
    def __init__(self, store: KeyStore | None = None) -> None:
        self.store = store
        self.revision = 0  # the poll's cursor: every write up to it has been applied
        self.loaded = False  # True after the first successful poll
        self._live: dict[str, KeyRecord] = {}  # key_hash -> record, revoked keys left out
        self._seen: dict[str, tuple[int, str]] = {}  # id -> (revision, key_hash) last applied
        self._lock = asyncio.Lock()
        self._last_error_log = -math.inf
        self._failing = False

    def __len__(self) -> int:
        return len(self._live)

    def lookup(self, secret: str) -> KeyRecord | None:
        """The live (not revoked) key whose secret this is, or None. O(1), no I/O. Expiry is
        the caller's to check."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        return self._live.get(hash_secret(secret))

    def lookup_hash(self, key_hash: str) -> KeyRecord | None:
        return self._live.get(key_hash)

    def apply(self, revision: int, records: Iterable[KeyRecord]) -> None:
        """A poll's answer: `records` written after the cursor, and the cursor's new value."""
        for record in records:
            self.put(record)
        if revision > self.revision:
            self.revision = revision
        self.loaded = True

    def put(self, record: KeyRecord) -> None:
        """One key as written (revoked: dropped), unless a newer version is already here."""
        seen = self._seen.get(record.id)
        if seen is not None:
            if seen[0] > record.revision:
                return
            self._live.pop(seen[1], None)
        self._seen[record.id] = (record.revision, record.key_hash)
        if record.revoked_at is None:
            self._live[record.key_hash] = record

    async def refresh(self) -> int:
        """Poll now (the database work in a thread); returns how many records changed. Raises
        what the store raises (DatabaseUnavailable)."""
        store = self.store
        if store is None:
            raise RuntimeError("KeyCache.refresh needs a KeyStore: KeyCache(store) or run(store)")
        async with self._lock:
            revision, records = await asyncio.to_thread(store.changes_since, self.revision)
            self.apply(revision, records)
        return len(records)

    async def run(self, store: KeyStore | None = None, interval: float = POLL_INTERVAL_SECONDS) -> None:
        """Poll for ever (cancel the task to stop). Errors are logged, never raised."""
        if store is not None:
            self.store = store
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._poll_failed(error)
            else:
                if self._failing:
                    self._failing = False
                    logger.info("key cache: the key database answers again (%d live keys)", len(self._live))
            await asyncio.sleep(interval)

    def _poll_failed(self, error: Exception) -> None:
        self._failing = True
        now = time.monotonic()
        if now - self._last_error_log < ERROR_LOG_SECONDS:
            return
        self._last_error_log = now
        if isinstance(error, GatewayError):  # DatabaseUnavailable: a one-line, scrubbed reason
            logger.warning(
                "key cache: cannot poll: %s; keeping the %d live keys known", error.message, len(self._live)
            )
        else:
            logger.warning(
                "key cache: cannot poll (%s); keeping the %d live keys known",
                type(error).__name__,
                len(self._live),
                exc_info=error,
            )

"""Consumer keys in a real database (SQLite for one host, PostgreSQL for several).

    db.py        one engine per process and URL; errors as DatabaseUnavailable, no password
    schema.py    the tables (Core); migrations/ creates them (Alembic, imported only to migrate)
    migrate.py   migrate(url), prepare_database(url): idempotent, safe to run concurrently
    prepare.py   `python -m gateway.store.prepare`: prepare_database in a process of its own
    keys.py      KeyStore (create, list, get, update, revoke, changes_since) and KeyRecord
    cache.py     KeyCache: each worker's in-memory map of live keys, kept current by polling

Everything here is synchronous except KeyCache.run/refresh; asyncio callers run store calls
through `asyncio.to_thread`. Importing this package imports SQLAlchemy (a few hundred ms):
import it only when a database is configured.
"""

from gateway.errors import DatabaseUnavailable
from gateway.store.cache import KeyCache
from gateway.store.db import describe
from gateway.store.keys import KeyPage, KeyRecord, KeyStore, hash_secret, new_secret
from gateway.store.migrate import migrate, prepare_database

__all__ = [
    "DatabaseUnavailable",
    "KeyCache",
    "KeyPage",
    "KeyRecord",
    "KeyStore",
    "describe",
    "hash_secret",
    "migrate",
    "new_secret",
    "prepare_database",
]

"""`python -m gateway.store.prepare`: migrates the key database named on stdin, then exits.

`gateway start` runs this before any worker spawns (cli.py `_database_ready`) instead of
migrating in the supervisor: Alembic and SQLAlchemy (about 20 MB) would otherwise stay in the
supervisor and in every worker forked from it. The URL travels on stdin, never on the command
line, where any user could read its password. Exit 0: ready; 2: the one-line reason was printed
to stderr (`REASON` + why, without the password).
"""

from __future__ import annotations

import logging
import sys

from gateway.store import DatabaseUnavailable, prepare_database

REASON = "Error: the key database cannot be used: "
UNUSABLE = 2


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    url = sys.stdin.read()
    try:
        prepare_database(url)
    except DatabaseUnavailable as exc:
        print(f"{REASON}{exc.message}", file=sys.stderr)
        return UNUSABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Resolve key fields the way MLflow does: a whole-value `$VAR`, a path to a key file, or the
literal key. Unlike MLflow, the trailing newline of a key file is stripped (it would corrupt
the auth header)."""

from __future__ import annotations

import os
from typing import Any

from gateway.errors import ConfigError

NOT_A_STRING = (
    "The api key provided is not a string. Please provide either an environment variable key, "
    "a path to a file containing the api key, or the api key itself"
)


def resolve_secret(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(NOT_A_STRING)
    if value.startswith("$"):
        name = value[1:]
        resolved = os.environ.get(name)
        if not resolved:
            raise ConfigError(f"Environment variable '{name}' is not set")
        return resolved
    try:
        if len(value) < 4096 and os.path.isfile(value):
            with open(value, encoding="utf-8") as handle:
                return handle.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"key file '{value}' cannot be read: {exc.strerror}") from None
    return value

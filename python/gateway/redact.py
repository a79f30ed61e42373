"""Keeps secrets out of what the gateway says: error bodies, stream error events and logs.

An upstream may echo the key it was sent ("Incorrect API key provided: sk-...") and a library
may put a credential in an exception's text. Every configured secret (the provider config fields
that hold keys, tokens, passwords and credentials) and anything shaped like a well-known API key
is replaced with `***` before it leaves the process. Runs only on error paths.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

MASK = "***"
# config field names whose values are secrets
SECRET_NAME = re.compile(r"key|secret|token|password|credential|authorization", re.IGNORECASE)
# well-known API key shapes, redacted wherever they appear
KEY_SHAPES = (
    r"\bsk-[A-Za-z0-9_\-]{12,}",  # OpenAI, Anthropic (sk-ant-...), DeepSeek, OpenRouter (sk-or-...)
    r"\bgsk_[A-Za-z0-9]{20,}",  # Groq
    r"\bxai-[A-Za-z0-9]{20,}",  # xAI
    r"\bAIza[0-9A-Za-z_\-]{30,}",  # Google API keys
    r"\bdapi[0-9a-f]{32}\b",  # Databricks personal access tokens
    r"\bABSK[A-Za-z0-9+/=]{20,}",  # Bedrock API keys
    r"\bgw-[A-Za-z0-9_\-]{20,}",  # this gateway's consumer keys
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{12,}",  # any bearer credential
)
SHORTEST_SECRET = 8  # shorter values would mask ordinary words (names, placeholders)


class Redactor:
    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literal = sorted({s for s in secrets if len(s) >= SHORTEST_SECRET}, key=len, reverse=True)
        self._pattern = re.compile("|".join([*(re.escape(s) for s in literal), *KEY_SHAPES]))

    def text(self, value: str) -> str:
        return self._pattern.sub(MASK, value)

    def value(self, value: Any) -> Any:
        """Strings redacted anywhere inside lists and dicts (an error detail)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value


def config_secrets(config: Any, secret_fields: Iterable[str] = ()) -> set[str]:
    """The secret strings of a provider config: the named secret fields, every field whose name
    says it holds a secret, at any depth, and the string values of an embedded credentials JSON."""
    found: set[str] = set()
    named = set(secret_fields)

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, msgspec.Struct):
            for field in msgspec.structs.fields(value):
                item = getattr(value, field.name)
                if item == field.default:
                    continue  # a default is a placeholder (Ollama's "ollama"), not a secret
                walk(item, secret or field.name in named or _secret_name(field.name))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, secret or _secret_name(str(key)))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)
        elif isinstance(value, str) and secret:
            found.add(value)
            if value.lstrip().startswith("{"):  # a service-account JSON: its parts too
                with contextlib.suppress(msgspec.DecodeError):
                    walk(msgspec.json.decode(value), True)

    walk(config, False)
    return found


def _secret_name(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


class RedactingFilter(logging.Filter):
    """Redacts each log record's message (and its traceback) with the current redactor."""

    def __init__(self, current: Callable[[], Redactor]) -> None:
        super().__init__()
        self.current = current

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.current()
        message = record.getMessage()
        clean = redactor.text(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if clean != message:
            record.msg, record.args = clean, ()
        return True

"""Endpoint `aliases`: the model names agents and SDKs send on their own (`claude-sonnet-4-5`,
`claude-3-5-haiku-latest`, ...) mapped to the endpoint the operator chose, without client
configuration. An alias is an exact name or a glob pattern (`*`, `?`, `[...]`, as in fnmatch).

A name resolves to an endpoint or route of that name first, then to an exact alias (one dict
lookup), then to the first glob alias in config order that matches; a glob's answer is cached,
so a name an agent sends on every request is matched once. Two entries claiming the same exact
alias, or an alias that is another entry's name, make the config invalid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate
from typing import Any

from gateway.errors import ConfigError

GLOB_CHARS = frozenset("*?[")
MAX_ALIAS_LENGTH = 256
# distinct names whose glob answer is remembered; past it, matched afresh (an unbounded cache
# would let clients grow a worker's memory with made-up names)
MATCH_CACHE_SIZE = 4096


def is_glob(alias: str) -> bool:
    return not GLOB_CHARS.isdisjoint(alias)


def parse_aliases(value: Any) -> tuple[str, ...]:
    """`aliases:` as written: a list of names or glob patterns (one string is one alias)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError("aliases: Input should be a valid list of model names or glob patterns")
    aliases: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_ALIAS_LENGTH:
            raise ConfigError(
                f"aliases: each alias must be a non-empty string of at most {MAX_ALIAS_LENGTH} characters"
            )
        if any(ch.isspace() for ch in item):
            raise ConfigError(f"aliases: '{item}' contains whitespace")
        if item not in aliases:
            aliases.append(item)
    return tuple(aliases)


def check_aliases(owners: Iterable[tuple[str, tuple[str, ...]]]) -> None:
    """(entry name, its aliases) in config order: an exact alias may be claimed once and may not
    be another entry's name (a name always means that entry)."""
    entries = list(owners)
    names = {name for name, _ in entries}
    claimed: dict[str, str] = {}
    for name, aliases in entries:
        for alias in aliases:
            if is_glob(alias):
                continue
            if alias in names and alias != name:
                raise ConfigError(
                    f"endpoint '{name}': alias '{alias}' is the name of another endpoint or route"
                )
            other = claimed.get(alias)
            if other is not None and other != name:
                raise ConfigError(
                    f"endpoint '{name}': alias '{alias}' is already an alias of '{other}'; "
                    "an exact alias must name one endpoint or route"
                )
            claimed[alias] = name


class AliasIndex:
    """name -> the endpoint/route name it is an alias of, None when none."""

    __slots__ = ("_cache", "exact", "globs")

    def __init__(self, owners: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        self.exact: dict[str, str] = {}
        self.globs: list[tuple[re.Pattern[str], str, str]] = []  # (pattern, as written, owner)
        for name, aliases in owners:
            for alias in aliases:
                if is_glob(alias):
                    self.globs.append((re.compile(translate(alias)), alias, name))
                else:
                    self.exact.setdefault(alias, name)
        self._cache: dict[str, str | None] = {}

    def __bool__(self) -> bool:
        return bool(self.exact or self.globs)

    def lookup(self, name: str) -> str | None:
        owner = self.exact.get(name)
        if owner is not None or not self.globs:
            return owner
        try:
            return self._cache[name]
        except KeyError:
            pass
        owner = next((entry for pattern, _, entry in self.globs if pattern.match(name)), None)
        if len(self._cache) < MATCH_CACHE_SIZE:
            self._cache[name] = owner
        return owner

    def listed(self) -> list[tuple[str, str]]:
        """(alias as written, owner) in config order: exact aliases, then glob patterns."""
        return [*self.exact.items(), *((alias, owner) for _, alias, owner in self.globs)]

"""Reading a config file safely: a readable UTF-8 file of bounded size, and YAML whose aliases
cannot expand into a bomb."""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from gateway.errors import ConfigError
from gateway.settings import settings


def read_config_text(path: str) -> str:
    """The file's text, or a one-line ConfigError for anything that is not a readable UTF-8
    file of at most `max_config_bytes`: a directory, a FIFO or device (opened without blocking,
    never read), a huge file (never read whole), bytes that are not UTF-8."""
    limit = settings().max_config_bytes
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{path} cannot be read: Is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ConfigError(_too_large(path, limit, info.st_size))
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # grew since fstat
        raise ConfigError(_too_large(path, limit))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def _too_large(path: str, limit: int, size: int | None = None) -> str:
    actual = f"{size} bytes, " if size is not None else ""
    return f"{path} is {actual}over the {limit}-byte limit for a config file (GATEWAY_MAX_CONFIG_BYTES)"


# what a document may expand to through YAML aliases and merge keys (`&a ... *a`, `<<: *a`):
# PyYAML shares an aliased node instead of copying it, so a 600-byte "billion laughs" loads in
# milliseconds and then costs minutes and gigabytes to whatever walks it (str(), msgspec, JSON)
MAX_YAML_NODES = 1_000_000
MAX_YAML_DEPTH = 100


class _BoundedLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing a document before construction when its node graph,
    aliases expanded, has more than MAX_YAML_NODES nodes, nests deeper than MAX_YAML_DEPTH, or
    contains itself."""

    def construct_document(self, node: yaml.Node) -> Any:
        check_yaml_graph(node)
        return super().construct_document(node)


def check_yaml_graph(root: yaml.Node) -> None:
    """One pass over the distinct nodes (iterative, memoised), so its cost is the file's size,
    not the expansion's."""
    expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded
    open_nodes: set[int] = set()  # nodes whose children are being expanded
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if not children_done and key in expanded:
            continue
        children = _yaml_children(node)
        if children_done:
            open_nodes.discard(key)
            nodes = 1 + sum(expanded[id(child)][0] for child in children)
            depth = 1 + max((expanded[id(child)][1] for child in children), default=0)
            if nodes > MAX_YAML_NODES:
                raise ConfigError(
                    f"the YAML document expands to more than {MAX_YAML_NODES:,} nodes through its "
                    "aliases (&anchor / *alias)"
                )
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(f"the YAML document nests more than {MAX_YAML_DEPTH} levels deep")
            expanded[key] = (nodes, depth)
            continue
        if key in open_nodes:  # reached again from one of its own descendants
            raise ConfigError("the YAML document contains itself through an alias (&anchor / *alias)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in expanded)


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def load_yaml(text: str) -> Any:
    """yaml.safe_load(text), bounded."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()

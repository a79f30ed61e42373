"""Plugin providers (spec §8): third-party packages that add a provider.

A package registers a provider class under the entry-point group `gateway.providers`:

    [project.entry-points."gateway.providers"]
    echo = "example_provider:EchoProvider"

The class is a subclass of `gateway.providers.base.Provider` (answers by itself: `invoke`, and
`open_stream` for streaming) or `HttpProvider` (an upstream HTTP API through its hooks), with a
non-empty `display_name`, a `config_type` (a `ProviderConfig` struct, default: no fields),
`endpoint_types` and `streaming_types`. It raises `gateway.errors.GatewayError(detail, status)`
for errors the client should see. A config names it by the exact entry-point name (no case or
dash folding) and may omit `config`; MLFLOW_GATEWAY_ALLOWED_PROVIDERS filters plugins too.

The group is read once per process, the first time a config names a provider that is not built
in, and a plugin module is imported only when a config uses it. An entry-point name that
clashes with a built-in provider (including MLflow's names this gateway does not implement) or
with another package's plugin makes that config load fail with a ConfigError naming both.

MLflow's own plugin group, `mlflow.gateway.providers`, is not loaded: its classes subclass
mlflow's BaseProvider, so loading them would import mlflow. A name found only there is named
in the error, so the operator knows the plugin must be ported to this protocol.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from gateway.errors import ConfigError
from gateway.providers import MLFLOW_PROVIDERS
from gateway.providers.base import Provider, ProviderConfig

GROUP = "gateway.providers"
MLFLOW_GROUP = "mlflow.gateway.providers"
_classes: dict[str, type[Provider]] = {}


def find(name: str) -> EntryPoint | None:
    """The plugin registered under exactly `name`, if any."""
    return _registered().get(name)


def load(name: str) -> type[Provider]:
    """The plugin's provider class, imported and checked on first use."""
    cls = _classes.get(name)
    if cls is None:
        entry = find(name)
        if entry is None:
            raise ConfigError(unknown_message(name))
        cls = _classes[name] = _load(entry)
    return cls


def unknown_message(value: object) -> str:
    message = f"The provider '{value}' is not supported."
    if isinstance(value, str) and any(ep.name == value for ep in entry_points(group=MLFLOW_GROUP)):
        message += (
            f" An MLflow gateway plugin named '{value}' is installed ({MLFLOW_GROUP}), but MLflow "
            f"plugins are not loaded: register a {GROUP} plugin built on gateway.providers.base."
        )
    return message


@functools.cache
def _registered() -> dict[str, EntryPoint]:
    """Entry points of the group by name, checked for clashes; no plugin module is imported.
    A clash raises, and is not cached: every later lookup reports it again."""
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=GROUP):
        builtin = MLFLOW_PROVIDERS.get(entry.name.replace("-", "_").upper())
        if builtin is not None:
            raise ConfigError(
                f"plugin provider '{entry.name}' ({entry.value}{_origin(entry)}) clashes with the built-in "
                f"provider '{builtin}': rename its entry point in group {GROUP}"
            )
        other = found.get(entry.name)
        if other is not None and other.value != entry.value:
            raise ConfigError(
                f"plugin provider '{entry.name}' is registered twice in group {GROUP}: "
                f"{other.value}{_origin(other)} and {entry.value}{_origin(entry)}"
            )
        found[entry.name] = entry
    return found


def _load(entry: EntryPoint) -> type[Provider]:
    where = f"plugin provider '{entry.name}' ({entry.value}{_origin(entry)})"
    try:
        cls = entry.load()
    except Exception as exc:  # any import-time failure of third-party code
        raise ConfigError(f"{where} failed to load: {type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigError(f"{where} is not a subclass of gateway.providers.base.Provider")
    if not (isinstance(cls.display_name, str) and cls.display_name):
        raise ConfigError(f"{where} must set display_name to a non-empty string")
    if not (isinstance(cls.config_type, type) and issubclass(cls.config_type, ProviderConfig)):
        raise ConfigError(f"{where} must set config_type to a subclass of ProviderConfig")
    return cls


def _origin(entry: EntryPoint) -> str:
    dist = entry.dist
    return f", from {dist.name} {dist.version}" if dist is not None else ""

"""The gateway's configuration: model.py (the data), load.py (YAML -> model, validated through
the provider registry), and a module per section (endpoints, routes, limits, auth, files)."""

from gateway.config.files import MAX_YAML_DEPTH, MAX_YAML_NODES, read_config_text
from gateway.config.limits import parse_limit
from gateway.config.load import load_config, parse_config
from gateway.config.model import (
    AuthConfig,
    Destination,
    EndpointConfig,
    GatewayConfig,
    JwtConfig,
    LimitConfig,
    RouteConfig,
)

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "AuthConfig",
    "Destination",
    "EndpointConfig",
    "GatewayConfig",
    "JwtConfig",
    "LimitConfig",
    "RouteConfig",
    "load_config",
    "parse_config",
    "parse_limit",
    "read_config_text",
]

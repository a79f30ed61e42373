"""Every knob a gateway process reads from its environment, read once.

The supervisor (`gateway start`) turns its flags into these variables before it spawns the
workers, so a worker's settings are the supervisor's. Call `settings()` where a value is
needed; `reload_settings()` re-reads the environment (tests, and the supervisor after it has
applied its flags).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    # requests
    max_request_bytes: int = 32 * MIB  # GATEWAY_MAX_REQUEST_BYTES: larger bodies get 413
    # a request body must arrive within body_timeout_seconds, and after the first
    # body_grace_seconds at body_min_bytes_per_second or faster; a slower one gets 408 and its
    # connection is closed (0 turns a rule off)
    body_timeout_seconds: float = 300.0  # GATEWAY_BODY_TIMEOUT_SECONDS
    body_grace_seconds: float = 10.0  # GATEWAY_BODY_GRACE_SECONDS
    body_min_bytes_per_second: int = 1024  # GATEWAY_BODY_MIN_BYTES_PER_SECOND
    # what a JSON body may hold, checked on its raw bytes before it is decoded (0: no limit):
    # nesting of arrays and objects (deeper: 400), array items + object members (more: 413),
    # items of the top-level `messages` array (more: 413)
    max_json_depth: int = 64  # GATEWAY_MAX_JSON_DEPTH
    max_json_values: int = 1_000_000  # GATEWAY_MAX_JSON_VALUES
    max_request_messages: int = 50_000  # GATEWAY_MAX_REQUEST_MESSAGES
    # connections one worker serves at once (Granian's backpressure; more wait in the listen
    # backlog) and the largest request head (hyper's read buffer; larger: 431)
    worker_connections: int = 4096  # GATEWAY_WORKER_CONNECTIONS
    max_header_bytes: int = 64 * 1024  # GATEWAY_MAX_HEADER_BYTES
    # upstreams
    route_timeout_seconds: float = 300.0  # MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS
    # an upstream answer, decompressed, read whole (non-streamed): larger is a 502
    max_response_bytes: int = 64 * MIB  # GATEWAY_MAX_RESPONSE_BYTES
    # one SSE line or event of a stream: larger ends the stream with an error event
    max_stream_event_bytes: int = 8 * MIB  # GATEWAY_MAX_STREAM_EVENT_BYTES
    # inflated / compressed size of a gzip or deflate answer, judged past 1 MiB (0: unchecked)
    max_decompression_ratio: float = 200.0  # GATEWAY_MAX_DECOMPRESSION_RATIO
    # idle keep-alive connections per upstream origin kept for 20 s; more close after 2 s idle
    upstream_idle_connections: int = 64  # GATEWAY_UPSTREAM_IDLE_CONNECTIONS
    # hot reload
    reload_interval_seconds: float = 1.0  # GATEWAY_RELOAD_INTERVAL_SECONDS (0: off)
    # config files: a larger one is refused (start, validate, hot reload)
    max_config_bytes: int = 1 * MIB  # GATEWAY_MAX_CONFIG_BYTES
    # process lifecycle: how long a stopping worker may finish in-flight requests and streams
    # before it is killed (gateway start --drain-seconds)
    drain_seconds: float = 30.0  # GATEWAY_DRAIN_SECONDS
    # rate limits: buckets in the host's shared table (a power of two, at least 64) and where its
    # file goes (else /dev/shm, $XDG_RUNTIME_DIR, the temp dir); Redis lease and timeout
    limits_slots: int = 65536  # GATEWAY_LIMITS_SLOTS
    limits_dir: str = ""  # GATEWAY_LIMITS_DIR
    limits_lease_seconds: float = 600.0  # GATEWAY_LIMITS_LEASE_SECONDS
    limits_redis_timeout_seconds: float = 0.5  # GATEWAY_LIMITS_REDIS_TIMEOUT_SECONDS
    # config defaults from the environment (MLflow's variables, then ours)
    allowed_providers: str = ""  # MLFLOW_GATEWAY_ALLOWED_PROVIDERS: comma list, empty: all
    limits_storage_uri: str = ""  # MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI, when no limits_storage
    database_url: str = ""  # GATEWAY_DATABASE_URL, when the config sets no database_url
    state_dir: str = ""  # GATEWAY_STATE_DIR: the default SQLite database's directory
    # TLS termination (gateway start --ssl-certfile / --ssl-keyfile): PEM files, both or neither
    ssl_certfile: str = ""  # GATEWAY_SSL_CERTFILE: the certificate chain, leaf first
    ssl_keyfile: str = ""  # GATEWAY_SSL_KEYFILE: its private key
    ssl_keyfile_password: str = ""  # GATEWAY_SSL_KEYFILE_PASSWORD: for an encrypted key
    # observability: the access log's file, "-" for stdout, empty: none (gateway start
    # --access-log); whether GET /metrics asks for a gateway key like the other non-invocation
    # routes (1) or only applies the IP lists (0: Prometheus scrapers without a key)
    access_log: str = ""  # GATEWAY_ACCESS_LOG
    metrics_require_key: int = 1  # GATEWAY_METRICS_REQUIRE_KEY


# setting name -> the environment variable it is read from
ENVIRONMENT: dict[str, str] = {
    "max_request_bytes": "GATEWAY_MAX_REQUEST_BYTES",
    "body_timeout_seconds": "GATEWAY_BODY_TIMEOUT_SECONDS",
    "body_grace_seconds": "GATEWAY_BODY_GRACE_SECONDS",
    "body_min_bytes_per_second": "GATEWAY_BODY_MIN_BYTES_PER_SECOND",
    "max_json_depth": "GATEWAY_MAX_JSON_DEPTH",
    "max_json_values": "GATEWAY_MAX_JSON_VALUES",
    "max_request_messages": "GATEWAY_MAX_REQUEST_MESSAGES",
    "worker_connections": "GATEWAY_WORKER_CONNECTIONS",
    "max_header_bytes": "GATEWAY_MAX_HEADER_BYTES",
    "route_timeout_seconds": "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS",
    "max_response_bytes": "GATEWAY_MAX_RESPONSE_BYTES",
    "max_stream_event_bytes": "GATEWAY_MAX_STREAM_EVENT_BYTES",
    "max_decompression_ratio": "GATEWAY_MAX_DECOMPRESSION_RATIO",
    "upstream_idle_connections": "GATEWAY_UPSTREAM_IDLE_CONNECTIONS",
    "reload_interval_seconds": "GATEWAY_RELOAD_INTERVAL_SECONDS",
    "max_config_bytes": "GATEWAY_MAX_CONFIG_BYTES",
    "drain_seconds": "GATEWAY_DRAIN_SECONDS",
    "limits_slots": "GATEWAY_LIMITS_SLOTS",
    "limits_dir": "GATEWAY_LIMITS_DIR",
    "limits_lease_seconds": "GATEWAY_LIMITS_LEASE_SECONDS",
    "limits_redis_timeout_seconds": "GATEWAY_LIMITS_REDIS_TIMEOUT_SECONDS",
    "allowed_providers": "MLFLOW_GATEWAY_ALLOWED_PROVIDERS",
    "limits_storage_uri": "MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI",
    "database_url": "GATEWAY_DATABASE_URL",
    "state_dir": "GATEWAY_STATE_DIR",
    "ssl_certfile": "GATEWAY_SSL_CERTFILE",
    "ssl_keyfile": "GATEWAY_SSL_KEYFILE",
    "ssl_keyfile_password": "GATEWAY_SSL_KEYFILE_PASSWORD",
    "access_log": "GATEWAY_ACCESS_LOG",
    "metrics_require_key": "GATEWAY_METRICS_REQUIRE_KEY",
}


class SettingsError(ValueError):
    """A variable that is set but not a valid value; the message names it."""


def read_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    values: dict[str, object] = {}
    for field in fields(Settings):
        name = ENVIRONMENT[field.name]
        raw = environ.get(name)
        if raw is None or not raw.strip():
            continue
        kind: type[int] | type[float] | type[str] = type(field.default)  # type: ignore[assignment]
        try:
            value = kind(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
        if isinstance(value, int | float) and value < 0:
            raise SettingsError(f"{name}={raw!r} must not be negative")
        values[field.name] = value
    return Settings(**values)  # type: ignore[arg-type]


@cache
def settings() -> Settings:
    return read_settings()


def reload_settings() -> Settings:
    settings.cache_clear()
    return settings()

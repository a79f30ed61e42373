"""gateway: a high-throughput LLM API gateway, drop-in compatible with the MLflow AI Gateway."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gateway")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]

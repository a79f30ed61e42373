"""The budgets' tests share the rate-limit tests' real redis-server fixture."""

from tests.limits.conftest import redis_server

__all__ = ["redis_server"]

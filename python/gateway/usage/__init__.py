"""What each request used and cost: one `UsageRecord` per request, built by the pipeline's
record phase and handed to every sink (metrics, access log, usage database, budgets, traces)."""

from gateway.usage.record import UsageRecord

__all__ = ["UsageRecord"]

"""OpenAI's Responses API: passthrough to OpenAI and Azure, translation to Chat Completions for
every other provider (adapter.py)."""

from gateway.apis.responses.adapter import ResponsesApi, stored_response
from gateway.apis.responses.state import ResponseStates

__all__ = ["ResponseStates", "ResponsesApi", "stored_response"]

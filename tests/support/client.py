"""Small client helpers shared by the tests that drive a real gateway."""

from __future__ import annotations

from typing import Any

import httpx


def invoke(http: httpx.Client, name: str, body: Any) -> httpx.Response:
    """POST to an endpoint's MLflow invocation route."""
    return http.post(f"/endpoints/{name}/invocations", json=body)

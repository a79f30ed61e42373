"""An invalid body through the running server: FastAPI's 422 body, byte for byte (on /v1 with
the OpenAI error object next to it)."""

from __future__ import annotations

import httpx

from tests.integration.configs import openai_config

BODY = b'{"model": null, "messages": [], "temperature": 3e+300, "stop": "END", "seed": 1}'
# FastAPI + MLflow's own models answer exactly this (tests/unit/test_fastapi_422.py checks the rest)
EXPECTED_DETAIL = (
    b'[{"type":"list_type","loc":["body","stop"],"msg":"Input should be a valid list","input":"END"},'
    b'{"type":"less_than_equal","loc":["body","temperature"],"msg":"Input should be less than or equal to 2",'
    b'"input":3e+300,"ctx":{"le":2.0}},'
    b'{"type":"too_short","loc":["body","messages"],'
    b'"msg":"List should have at least 1 item after validation, not 0","input":[],'
    b'"ctx":{"field_type":"List","min_length":1,"actual_length":0}}]'
)


def test_invalid_body_gets_fastapis_422_on_both_routes(start_gateway, upstream):
    gateway = start_gateway(openai_config(upstream.base))
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        response = http.post("/endpoints/chat/invocations", content=BODY, headers=headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json"
        assert response.content == b'{"detail":' + EXPECTED_DETAIL + b"}"

        response = http.post(
            "/v1/chat/completions", content=BODY.replace(b"null", b'"chat"'), headers=headers
        )
        assert response.status_code == 422
        message = (
            "stop: Input should be a valid list; temperature: Input should be less than or equal to 2; "
            "messages: List should have at least 1 item after validation, not 0"
        )
        assert response.content == (
            b'{"detail":'
            + EXPECTED_DETAIL
            + b',"error":{"message":"'
            + message.encode()
            + b'","type":"invalid_request_error","code":422}}'
        )
        assert http.get("/health").status_code == 200

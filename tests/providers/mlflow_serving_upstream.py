"""An MLflow model server on 127.0.0.1 (`mlflow models serve`), in its real wire format.

POST /{scenario}/invocations takes `{"inputs": [...], "params": {...}}` and answers
`{"predictions": ...}`; errors are MLflow's `{"error_code", "message"}`. The endpoint's
`model_server_url` is `{url}/{scenario}`:

  echo        one string per input: "echo: <input>"
  choices     {"predictions": {"choices": ["a", "b"]}}
  single      {"predictions": {"candidates": ["only"]}}
  vectors     one [0.1, 0.2, index] per input
  flat        a single flat vector [0.5, 0.25]
  invalid     {"predictions": {"a": 1, "b": 2}} (a multi-key dict without choices)
  no-key      {"outputs": [...]}
  err-400     MLflow's BAD_REQUEST error
  slow-<ms>   waits, then echoes
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream

BAD_REQUEST = {
    "error_code": "BAD_REQUEST",
    "message": "Failed to enforce schema of data with schema ['prompt': string (required)]. Error: missing input.",
}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class MlflowServingUpstream(RecordingUpstream):
    def setup(self, app: web.Application) -> None:
        app.router.add_post("/{scenario}/invocations", self.invocations)

    async def invocations(self, request: web.Request) -> web.Response:
        body = (await self.record(request)).body
        scenario = request.match_info["scenario"]
        if scenario == "err-400":
            return web.json_response(BAD_REQUEST, status=400)
        if scenario.startswith("slow-"):
            await asyncio.sleep(int(scenario[5:]) / 1000)
        inputs = body["inputs"]
        predictions: Any = {
            "choices": {"choices": ["a", "b"]},
            "single": {"candidates": ["only"]},
            "vectors": [[0.1, 0.2, float(index)] for index, _ in enumerate(inputs)],
            "flat": [0.5, 0.25],
            "invalid": {"a": 1, "b": 2},
        }.get(scenario, [f"echo: {item}" for item in inputs])
        if scenario == "no-key":
            return web.json_response({"outputs": predictions}, dumps=_dumps)
        return web.json_response({"predictions": predictions}, dumps=_dumps)

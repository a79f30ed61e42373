"""MLflow Model Serving (spec §7.5): `POST {model_server_url}/invocations`, no auth, no streaming.

Requests are MLflow's `{"inputs": [...], "params": {...}}`; `params` holds every other field,
the client's `model` included (this provider has no model guard in MLflow), and `n: 1` when the
client sent no `n`, as MLflow's defaults put it there. Answers are read from `predictions` with
MLflow's rules; anything else is a 502 that says what was wrong.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.errors import InvalidParameter, UpstreamUnavailable
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest
from gateway.schemas.responses import (
    ChatChoice,
    ChatMessageOut,
    ChatResponse,
    CompletionsChoice,
    CompletionsResponse,
    EmbeddingItem,
    EmbeddingsResponse,
    Response,
)
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

INPUT_FIELDS = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}
NULL_USAGE = {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
TEXT_RULES: list[dict[str, Any]] = [{"field": "n", "default": 1}]


class MlflowServingConfig(ProviderConfig):
    model_server_url: str


def text_predictions(data: Payload) -> list[str]:
    """A non-empty list of strings, or a dict holding one: its only value, or its `choices`."""
    predictions = _predictions(data)
    if isinstance(predictions, dict):
        if "choices" not in predictions and len(predictions) > 1:
            raise _invalid(
                "The dict format is invalid for this route type. Ensure the served model returns a dict "
                "key containing 'choices'"
            )
        predictions = next(iter(predictions.values())) if len(predictions) == 1 else predictions["choices"]
    if not isinstance(predictions, list) or not predictions:
        raise _invalid("predictions must be a non-empty list of strings")
    if not all(isinstance(item, str) for item in predictions):
        raise _invalid("every prediction must be a string")
    return predictions


def embedding_predictions(data: Payload) -> list[list[float]]:
    """A list of float vectors, or one flat vector."""
    predictions = _predictions(data)
    if not isinstance(predictions, list) or not predictions:
        raise _invalid("predictions must be a non-empty list of embeddings")
    if all(_is_number(item) for item in predictions):
        return [predictions]
    if not all(isinstance(item, list) and item and all(_is_number(x) for x in item) for item in predictions):
        raise _invalid("every embedding must be a non-empty list of floats")
    return predictions


def _predictions(data: Payload) -> Any:
    if "predictions" not in data:
        raise _invalid("The response is missing the required key: predictions.")
    return data["predictions"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _invalid(reason: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"Invalid response from the MLflow model server: {reason}")


class MlflowModelServingProvider(HttpProvider):
    display_name = "MLflow Model Serving"
    config_type = MlflowServingConfig
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    scaling_rules = {CHAT: TEXT_RULES, COMPLETIONS: TEXT_RULES}
    allows_model_override = True  # MLflow forwards it inside `params`

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: MlflowServingConfig = self.config
        self.url = f"{config.model_server_url.rstrip('/')}/invocations"
        self.headers = {"Content-Type": "application/json"}

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        inputs = payload.pop(INPUT_FIELDS[kind])
        if not isinstance(inputs, list):
            inputs = [inputs]
        if kind == CHAT:
            if len(inputs) > 1:
                raise InvalidParameter(
                    "MLflow chat models are only capable of processing a single query at a time. "
                    f"The request submitted consists of {len(inputs)} queries."
                )
            inputs = [inputs[0].get("content")]
        body: Payload = {"inputs": inputs}
        if payload:
            body["params"] = payload
        return UpstreamRequest(self.url, self.headers, body)

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        created = int(time.time())
        model = self.model or ""
        if kind == EMBEDDINGS:
            return EmbeddingsResponse(
                data=[
                    EmbeddingItem(embedding=vector, index=index)
                    for index, vector in enumerate(embedding_predictions(data))
                ],
                model=model,
                usage={"prompt_tokens": None, "total_tokens": None},
            )
        texts = text_predictions(data)
        if kind == COMPLETIONS:
            return CompletionsResponse(
                id=None,
                created=created,
                model=model,
                choices=[
                    CompletionsChoice(index=i, text=text, finish_reason=None) for i, text in enumerate(texts)
                ],
                usage=dict(NULL_USAGE),
            )
        return ChatResponse(
            id=None,
            created=created,
            model=model,
            choices=[
                ChatChoice(
                    index=i, message=ChatMessageOut(role="assistant", content=text), finish_reason=None
                )
                for i, text in enumerate(texts)
            ],
            usage=dict(NULL_USAGE),
            provider=self.name,
        )

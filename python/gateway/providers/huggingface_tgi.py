"""Hugging Face Text Generation Inference (spec §7.7), no auth, at `hf_server_url`.

Completions use TGI's native API as MLflow does: `POST /generate` (temperature ×50 with a
0.001 floor, `max_tokens` -> `max_new_tokens`, prompt tokens counted from the prefill), plus
`POST /generate_stream` for streaming, which MLflow lacks. Chat, a 501 in MLflow, goes to TGI's
OpenAI-compatible `POST /v1/chat/completions` (TGI >= 1.4), whose temperature range is
OpenAI's, so it is not scaled. TGI's finish reasons are mapped the way its own OpenAI route maps
them (`eos_token` and `stop_sequence` -> `stop`).
"""

from __future__ import annotations

import time
from typing import Any

from gateway.errors import InvalidParameter, UpstreamUnavailable
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest
from gateway.providers.openai_shapes import chat_chunk, chat_response
from gateway.schemas.responses import (
    Chunk,
    CompletionsChoice,
    CompletionsChunk,
    CompletionsChunkChoice,
    CompletionsResponse,
    Response,
)
from gateway.types import CHAT, COMPLETIONS, EndpointType, Payload

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
GENERATE_RULES: list[dict[str, Any]] = [
    # TGI's range is 0-100 and excludes 0; ours is 0-2 (MLflow's rule, kept)
    {"field": "temperature", "scale": 50, "min": 0.001},
    {"field": "max_tokens", "fallback": "max_completion_tokens"},
    {"field": "max_completion_tokens", "drop": True},
    {"field": "max_tokens", "rename": "max_new_tokens"},
    {"field": "n", "drop": True},
    {"field": "stream", "drop": True},
    {"field": "stream_options", "drop": True},
]


class HuggingFaceTGIConfig(ProviderConfig):
    hf_server_url: str


def finish_reason(value: Any) -> str | None:
    return FINISH_REASONS.get(value, value) if isinstance(value, str) else None


def raise_stream_error(data: Payload) -> None:
    """TGI reports a failure inside a stream as an event: {"error": ..., "error_type": ...}."""
    error = data.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        raise UpstreamUnavailable(f"Text Generation Inference failed mid-stream: {message}")


class HuggingFaceTGIProvider(HttpProvider):
    display_name = "Hugging Face Text Generation Inference"
    config_type = HuggingFaceTGIConfig
    endpoint_types = frozenset((CHAT, COMPLETIONS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    scaling_rules = {COMPLETIONS: GENERATE_RULES}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: HuggingFaceTGIConfig = self.config
        base = config.hf_server_url.rstrip("/")
        self.generate_url = f"{base}/generate"
        self.generate_stream_url = f"{base}/generate_stream"
        self.chat_url = f"{base}/v1/chat/completions"
        self.headers = {"Content-Type": "application/json"}

    def prepare(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == COMPLETIONS:
            # MLflow's checks, on the client's field names before the scaler renames them
            if "max_new_tokens" in payload:
                raise InvalidParameter("Invalid parameter max_new_tokens. Use max_tokens instead.")
            n = payload.get("n", 1)
            if n != 1:
                raise InvalidParameter(
                    f"'n' must be '1' for the Text Generation Inference provider.Received value: '{n}'."
                )
        return super().prepare(kind, payload, stream)

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == CHAT:
            if payload.get("n") == 1:
                payload.pop("n")  # the default; older TGI releases refuse the field
            body = {"model": self.model or "tgi", **payload}
            return UpstreamRequest(self.chat_url, self.headers, body)
        prompt = payload.pop("prompt")
        parameters = {**payload, "details": True}
        if stream:
            # prefill details are refused on streams, so streamed usage has no prompt count
            return UpstreamRequest(
                self.generate_stream_url, self.headers, {"inputs": prompt, "parameters": parameters}
            )
        parameters["decoder_input_details"] = True
        return UpstreamRequest(self.generate_url, self.headers, {"inputs": prompt, "parameters": parameters})

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        if kind == CHAT:
            return chat_response(data, self.name)
        details = data["details"]
        completion_tokens = details["generated_tokens"]
        prompt_tokens = len(details["prefill"])
        return CompletionsResponse(
            id=None,
            created=int(time.time()),
            model=self.model or "",
            choices=[
                CompletionsChoice(
                    index=0,
                    text=data["generated_text"],
                    finish_reason=finish_reason(details["finish_reason"]),
                )
            ],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        )

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        raise_stream_error(data)
        if kind == CHAT:
            return chat_chunk(data, self.name)
        token = data.get("token") or {}
        text = "" if token.get("special") else token.get("text")
        details = data.get("details")
        finish, usage = None, None
        if isinstance(details, dict):  # only on the last event
            finish = finish_reason(details.get("finish_reason"))
            usage = {
                "prompt_tokens": None,
                "completion_tokens": details.get("generated_tokens"),
                "total_tokens": None,
            }
        return CompletionsChunk(
            id=None,
            created=int(time.time()),
            model=self.model,
            choices=[CompletionsChunkChoice(index=0, finish_reason=finish, text=text)],
            usage=usage,
        )

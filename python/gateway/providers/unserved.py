"""TypeSafe and SAP AI Core (spec §7.17): providers MLflow's config accepts but whose endpoints
the standalone gateway cannot serve. Their configs load (MLflow's fields, unknown keys ignored)
with a warning, and every call answers 501 with the reason (see `Provider.unavailable`).

* TypeSafe (`typesafe_api_key`, resolved as `$VAR` / key file / literal, and
  `typesafe_api_base`) implements only MLflow's "System One" passthrough action, which the
  standalone server does not expose: chat, completions and embeddings all answer MLflow's
  `The {route} route is not implemented for TypeSafe models.`
* SAP AI Core (no config fields) is built for MLflow's LLM-judge path, which takes the
  Orchestration URL from `MLFLOW_GENAI_JUDGE_BASE_URL` and relies on an egress proxy for auth.
  Standalone, MLflow's chat calls fail with an opaque 500; here chat answers a 501 that says so,
  and completions and embeddings MLflow's 501.
"""

from __future__ import annotations

from typing import Any

from gateway.providers.base import Provider, ProviderConfig
from gateway.types import CHAT, EndpointType

TYPESAFE_API_BASE = "https://api.typesafe.ai/v1"
SAP_AI_CORE_CHAT = (
    "SAP AI Core endpoints are usable only through MLflow's LLM-judge path (a 'sap-ai-core:/' "
    "judge model, with MLFLOW_GENAI_JUDGE_BASE_URL set), not through the standalone gateway: "
    "the chat route is not implemented for SAP AI Core models."
)


class TypeSafeConfig(ProviderConfig):
    typesafe_api_key: str
    typesafe_api_base: str = TYPESAFE_API_BASE


class SapAiCoreConfig(ProviderConfig):
    """No fields: MLflow's judge path reads the endpoint URL from the environment."""


class TypeSafeProvider(Provider):
    display_name = "TypeSafe"
    config_type = TypeSafeConfig
    secret_fields = ("typesafe_api_key",)
    # nothing served: the default `unavailable` gives MLflow's 501 for every endpoint type


class SapAiCoreProvider(Provider):
    display_name = "SAP AI Core"
    config_type = SapAiCoreConfig

    @classmethod
    def unavailable(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> str | None:
        if endpoint_type == CHAT:
            return SAP_AI_CORE_CHAT
        return super().unavailable(config, model_name, endpoint_type)

"""Provider registry: canonical names, MLflow's name normalisation, and the built classes."""

from __future__ import annotations

from gateway.errors import ConfigError
from gateway.providers.base import Provider

# MLflow's Provider enum: member name -> the value reported in API responses
MLFLOW_PROVIDERS = {
    "OPENAI": "openai",
    "AZURE": "azure",
    "ANTHROPIC": "anthropic",
    "COHERE": "cohere",
    "AI21LABS": "ai21labs",
    "MLFLOW_MODEL_SERVING": "mlflow-model-serving",
    "MOSAICML": "mosaicml",
    "HUGGINGFACE_TEXT_GENERATION_INFERENCE": "huggingface-text-generation-inference",
    "PALM": "palm",
    "GEMINI": "gemini",
    "BEDROCK": "bedrock",
    "AMAZON_BEDROCK": "amazon-bedrock",
    "DATABRICKS": "databricks",
    "DATABRICKS_MODEL_SERVING": "databricks-model-serving",
    "MISTRAL": "mistral",
    "TOGETHERAI": "togetherai",
    "LITELLM": "litellm",
    "GROQ": "groq",
    "DEEPSEEK": "deepseek",
    "XAI": "xai",
    "OPENROUTER": "openrouter",
    "OLLAMA": "ollama",
    "VERTEX_AI": "vertex_ai",
    "PORTKEY": "portkey",
    "SAP_AI_CORE": "sap-ai-core",
    "TYPESAFE": "typesafe",
    # ours: deterministic, no network (demos, tests, benchmarks)
    "MOCK": "mock",
}
ALLOWED_ALIASES = {"amazon-bedrock": "bedrock", "databricks-model-serving": "databricks"}


def canonical_name(value: object) -> str:
    """MLflow matches case-insensitively with '-' and '_' interchangeable."""
    if isinstance(value, str):
        member = value.replace("-", "_").upper()
        if member in MLFLOW_PROVIDERS:
            return MLFLOW_PROVIDERS[member]
    raise ConfigError(f"The provider '{value}' is not supported.")


def provider_class(name: str) -> type[Provider]:
    from gateway.providers.mock import MockProvider
    from gateway.providers.openai import OpenAIProvider

    built: dict[str, type[Provider]] = {
        "openai": OpenAIProvider,
        "azure": OpenAIProvider,
        "mock": MockProvider,
    }
    try:
        return built[name]
    except KeyError:
        raise ConfigError(f"provider {name} is not supported yet") from None

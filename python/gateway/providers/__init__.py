"""Provider registry: canonical names, MLflow's name normalisation, and the built classes."""

from __future__ import annotations

import importlib

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
BUILTIN_NAMES = frozenset(MLFLOW_PROVIDERS.values())


def canonical_name(value: object) -> str:
    """MLflow matches case-insensitively with '-' and '_' interchangeable; a plugin provider
    (providers/plugins.py) matches its entry-point name exactly."""
    if isinstance(value, str):
        member = value.replace("-", "_").upper()
        if member in MLFLOW_PROVIDERS:
            return MLFLOW_PROVIDERS[member]
        from gateway.providers import plugins  # entry points are read only for a non-built-in name

        if plugins.find(value) is not None:
            return value
        raise ConfigError(plugins.unknown_message(value))
    raise ConfigError(f"The provider '{value}' is not supported.")


def is_plugin(name: str) -> bool:
    """Whether a canonical provider name is a plugin's (plugins may omit `config`)."""
    return name not in BUILTIN_NAMES


# canonical name -> "module:Class" of its implementation, imported on first use. A provider
# whose module does not exist yet is refused at config load with "not supported yet".
IMPLEMENTATIONS = {
    "openai": "gateway.providers.openai:OpenAIProvider",
    "azure": "gateway.providers.openai:OpenAIProvider",
    "mock": "gateway.providers.mock:MockProvider",
    "anthropic": "gateway.providers.anthropic:AnthropicProvider",
    "gemini": "gateway.providers.gemini:GeminiProvider",
    "vertex_ai": "gateway.providers.vertex_ai:VertexAIProvider",
    "bedrock": "gateway.providers.bedrock:BedrockProvider",
    "amazon-bedrock": "gateway.providers.bedrock:BedrockProvider",
    "mistral": "gateway.providers.mistral:MistralProvider",
    "togetherai": "gateway.providers.togetherai:TogetherAIProvider",
    "cohere": "gateway.providers.cohere:CohereProvider",
    "huggingface-text-generation-inference": "gateway.providers.huggingface_tgi:HuggingFaceTGIProvider",
    "mlflow-model-serving": "gateway.providers.mlflow_serving:MlflowModelServingProvider",
    "databricks": "gateway.providers.databricks:DatabricksProvider",
    "databricks-model-serving": "gateway.providers.databricks:DatabricksProvider",
    "ai21labs": "gateway.providers.ai21labs:AI21LabsProvider",
    "mosaicml": "gateway.providers.mosaicml:MosaicMLProvider",
    "palm": "gateway.providers.palm:PaLMProvider",
    "groq": "gateway.providers.openai_compatible:GroqProvider",
    "deepseek": "gateway.providers.openai_compatible:DeepSeekProvider",
    "xai": "gateway.providers.openai_compatible:XAIProvider",
    "ollama": "gateway.providers.openai_compatible:OllamaProvider",
    "openrouter": "gateway.providers.openai_compatible:OpenRouterProvider",
    "portkey": "gateway.providers.portkey:PortkeyProvider",
    "litellm": "gateway.providers.litellm:LiteLLMProvider",
    "typesafe": "gateway.providers.unserved:TypeSafeProvider",
    "sap-ai-core": "gateway.providers.unserved:SapAiCoreProvider",
}


def provider_class(name: str) -> type[Provider]:
    target = IMPLEMENTATIONS.get(name)
    if target is None:
        if is_plugin(name):
            from gateway.providers import plugins

            return plugins.load(name)
        raise ConfigError(f"provider {name} is not supported yet")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a real missing dependency, not a provider still to come
        raise ConfigError(f"provider {name} is not supported yet") from None
    cls: type[Provider] = getattr(module, class_name)
    return cls

"""Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) for every chat
endpoint, as Claude Code and the anthropic SDKs speak it.

    adapter.py            the ApiAdapter: reads the body, picks passthrough or translation
    passthrough.py        Claude upstreams (anthropic, Vertex AI Claude): the body, beta headers
                          and every SSE event byte for byte, usage read on the side
    bedrock.py            Claude on Bedrock (InvokeModel): the same, event-stream frames as SSE
    translate_request.py  a Messages body -> the gateway's chat payload (any other provider)
    translate_stream.py   the chat answer / chunks -> a Messages answer / SSE events
    count_tokens.py       count_tokens: passthrough, or an estimate said to be one
"""

from gateway.apis.anthropic.adapter import MessagesApi

__all__ = ["MessagesApi"]

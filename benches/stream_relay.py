"""CPU per relayed chat stream, without a server or a socket: an OpenAI provider opened on a
recorded 21-event stream (tests/support/transport.py), relayed to the client's bytes by the
Python path (`openai_stream_contract` + `encode_chunks`) and by the native relay
(`OpenAIChatStream.client_events`, rust/src/chatstream/), alternately, in one uvloop loop.

    python benches/stream_relay.py                  # one upstream read per event (paced upstream)
    python benches/stream_relay.py --one-read       # the whole stream in one read (a fast upstream)

Reports the median CPU time per stream (user + system of this process) over `--rounds`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.transport import RecordedTransport

from gateway.config import parse_config
from gateway.pipeline.context import StreamTally
from gateway.providers import provider_class
from gateway.providers.openai_stream import OpenAIChatStream
from gateway.proxy.openai_contract import openai_stream_contract
from gateway.proxy.streaming import encode_chunks

ENDPOINT = """
  - name: e
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-bench}}
"""
EVENTS = {"content-type": "text/event-stream"}
PAYLOAD = {"messages": [{"role": "user", "content": "hi"}]}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    head = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000}
    return {**head, "model": "gpt-4o-mini", "choices": [choice]}


def upstream_events() -> list[bytes]:
    """What `gateway mock-upstream` sends: a role, 18 words, the finish, the usage, [DONE]."""
    usage = {"prompt_tokens": 9, "completion_tokens": 19, "total_tokens": 28}
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": " word"}) for _ in range(18)]
    events += [chunk({}, "stop"), {**chunk({}), "choices": [], "usage": usage}]
    return [b"data: " + orjson.dumps(event) + b"\n\n" for event in events] + [b"data: [DONE]\n\n"]


async def measure(reads: list[bytes], streams: int, rounds: int) -> dict[str, list[float]]:
    endpoint = parse_config("endpoints:" + ENDPOINT).endpoints[0]
    transport = RecordedTransport()
    provider = provider_class(endpoint.provider)(endpoint, transport)

    async def relay(native: bool) -> None:
        transport.answers.append((200, EVENTS, reads))
        transport.sent.clear()
        stream = await provider.open_stream("llm/v1/chat", PAYLOAD)
        assert isinstance(stream, OpenAIChatStream)
        tally = StreamTally()
        if native:
            async for _ in stream.client_events(True, True, tally):
                pass
        else:
            async for batch in openai_stream_contract(stream, True, True, tally):
                encode_chunks(batch)

    results: dict[str, list[float]] = {"python": [], "native": []}
    for _ in range(rounds):
        for name in results:
            await relay(name == "native")  # warm
            started = time.process_time()
            for _ in range(streams):
                await relay(name == "native")
            results[name].append((time.process_time() - started) / streams * 1e6)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one-read", action="store_true", help="the whole stream in one upstream read")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    events = upstream_events()
    reads = [b"".join(events)] if args.one_read else events
    results = uvloop.run(measure(reads, args.streams, args.rounds))
    for name, values in results.items():
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name}: {statistics.median(values):.0f} us of CPU per 21-event stream ({rounds})")
    print(
        f"native / python: {statistics.median(results['native']) / statistics.median(results['python']):.2f}"
    )


if __name__ == "__main__":
    main()

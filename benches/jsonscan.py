"""What a JSON request body costs before and after it becomes Python objects, and what the
limit scan (gateway._native.JsonLimits) adds. Reproduces the figures behind the defaults of
GATEWAY_MAX_JSON_DEPTH / _VALUES / GATEWAY_MAX_REQUEST_MESSAGES (README, "Limits and safety").

    python benches/jsonscan.py            # about a minute

1. The scan on normal bodies: ns per call and per KB, next to orjson's decode of the same body.
2. Bodies at the default limits (and the million-tiny-messages body over them), each in a
   fresh process: orjson time, the RSS its objects take, validate_payload time, scan time.
3. How long decoding a body of the largest size (32 MiB) that is within the limits blocks an
   event loop: the longest gap of a 1 ms ticker while `decode_json_body` + `validate_payload`
   run on that loop (the scan of such a body runs in a worker thread without the GIL; orjson
   holds the GIL, so no thread can take its share off the loop).

Best of several runs; the machine is shared, so compare rows of one run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import timeit

MSG = b'{"role":"user","content":"a"}'
KINDS = {"chat": "llm/v1/chat", "embeddings": "llm/v1/embeddings"}


def messages(items: list[bytes], extra: bytes = b"") -> bytes:
    return b'{"messages":[' + b",".join(items) + b"]" + extra + b"}"


# name -> (Python expression building the body, endpoint type)
AT_LIMITS = {
    "1M tiny messages (3M values; refused)": ("messages([MSG] * 1_000_000)", "chat"),
    "50k messages (limit)": ("messages([MSG] * 50_000)", "chat"),
    "50k messages, last invalid (pydantic path)": (
        'messages([MSG] * 49_999 + [b\'{"role":"user","content":1}\'])',
        "chat",
    ),
    "50k messages x 19 members (950k values)": (
        'messages([b\'{"role":"user","content":"a"\' + b\'\'.join(b\',"k%d":1\' % i for i in range(16))'
        " + b'}'] * 50_000)",
        "chat",
    ),
    "1M small ints (embeddings input)": (
        "b'{\"input\":[' + b','.join([b'1'] * 999_999) + b']}'",
        "embeddings",
    ),
    "1M distinct ints": ("json.dumps({'input': list(range(999_999))}).encode()", "embeddings"),
    "1M empty objects (extra field)": (
        "messages([MSG], b',\"x\":[' + b','.join([b'{}'] * 999_990) + b']')",
        "chat",
    ),
    "500k {k:i} objects (1M values)": (
        "messages([MSG], b',\"x\":[' + b','.join(b'{\"k\":%d}' % i for i in range(499_990)) + b']')",
        "chat",
    ),
    "1M distinct strings, 31 MiB": (
        "messages([MSG], b',\"x\":[' + b','.join(b'\"%029d\"' % i for i in range(999_990)) + b']')",
        "chat",
    ),
    "one 32 MiB string": (
        'messages([b\'{"role":"user","content":"\' + b\'a\' * (32 * 2**20 - 64) + b\'"}\'])',
        "chat",
    ),
}

CHILD = r"""
import asyncio, gc, json, sys, time, timeit
import orjson
from gateway._native import json_stats
from gateway.schemas.validation import decode_json_body, json_limits, validate_payload
from benches.jsonscan import MSG, messages

body = eval(sys.argv[1]); kind = sys.argv[2]; mode = sys.argv[3]

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))

if mode == "cost":
    before = rss(); obj = orjson.loads(body); grown = rss() - before; del obj; gc.collect()
    decode = []
    for _ in range(3):
        t = time.perf_counter(); obj = orjson.loads(body); decode.append(time.perf_counter() - t)
        del obj; gc.collect()
    obj = orjson.loads(body)
    t = time.perf_counter()
    try:
        validate_payload(obj, kind)
    except Exception:
        pass
    validate = time.perf_counter() - t
    limits = json_limits()
    scan = min(timeit.repeat(lambda: limits.check(body), number=1, repeat=3))
    verdict = limits.check(body)
    print(f"{len(body) / 2**20:5.1f} MiB | {json_stats(body)[1]:>9,d} | {min(decode) * 1000:6.0f} ms | "
          f"{grown / 2**20:5.0f} MiB | {validate * 1000:6.0f} ms | {scan * 1000:5.1f} ms | {verdict or 'within'}")
else:
    async def once():
        gaps = []
        async def ticker():
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.001)
                now = time.perf_counter(); gaps.append(now - last); last = now
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        gaps.clear()
        t = time.perf_counter()
        outcome = "accepted"
        try:
            payload = await decode_json_body(body, "application/json")
            validate_payload(payload, kind)
            del payload
        except Exception as exc:
            outcome = f"{type(exc).__name__} {getattr(exc, 'status', '')}"
        total = time.perf_counter() - t
        await asyncio.sleep(0.01)
        tick.cancel()
        gc.collect()
        return total, max(gaps), outcome
    async def main():
        runs = [await once() for _ in range(3)]
        print(f"{len(body) / 2**20:.1f} MiB, {runs[0][2]}: decode + validate {runs[0][0] * 1000:.0f} ms first, "
              f"{min(r[0] for r in runs) * 1000:.0f} ms best; longest loop stall {runs[0][1] * 1000:.0f} ms first, "
              f"{min(r[1] for r in runs) * 1000:.0f} ms best")
    asyncio.run(main())
"""


def typical_bodies() -> dict[str, bytes]:
    hello = {"model": "chat", "messages": [{"role": "user", "content": "hello gateway"}]}
    turn = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8
    conversation = {
        "messages": [{"role": ("user", "assistant")[i % 2], "content": turn} for i in range(40)],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": f"f{i}",
                    "parameters": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                    },
                },
            }
            for i in range(10)
        ],
    }
    return {
        "hello (1 message)": json.dumps(hello).encode(),
        "1 KiB chat": json.dumps({"messages": [{"role": "user", "content": "x" * 950}]}).encode(),
        "40-turn chat + 10 tools": json.dumps(conversation).encode(),
        "1 MiB prose, escapes": json.dumps(
            {"messages": [{"role": "user", "content": 'line\n"q" ' * 100_000}]}
        ).encode(),
        "embeddings, 8k token ids": json.dumps({"input": [list(range(8192))]}).encode(),
    }


def scan_cost() -> None:
    import orjson

    from gateway.schemas.validation import json_limits

    limits = json_limits()
    print("| body | bytes | scan | scan per KiB | orjson.loads | scan / orjson |")
    print("|---|---|---|---|---|---|")
    for name, body in typical_bodies().items():
        n = max(1, int(2e6 // max(len(body), 500)))
        scan = min(timeit.repeat(lambda body=body: limits.check(body), number=n, repeat=7)) / n
        decode = min(timeit.repeat(lambda body=body: orjson.loads(body), number=n, repeat=7)) / n
        print(
            f"| {name} | {len(body):,} | {scan * 1e9:,.0f} ns | {scan * 1e9 / (len(body) / 1024):,.0f} ns "
            f"| {decode * 1e9:,.0f} ns | {scan / decode:.0%} |"
        )


def child(expr: str, kind: str, mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, expr, KINDS[kind], mode], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or out.stderr.strip()[-400:]


def main() -> None:
    print("## The scan on normal bodies\n")
    scan_cost()
    print("\n## Bodies at the limits (a fresh process each)\n")
    print("| body | size | values | orjson | + RSS | validate | scan | limits |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (expr, kind) in AT_LIMITS.items():
        print(f"| {name} | " + child(expr, kind, "cost").replace("\n", " ") + " |")
    print("\n## Event-loop stall of the largest bodies within the limits\n")
    for name in (
        "one 32 MiB string",
        "1M distinct strings, 31 MiB",
        "500k {k:i} objects (1M values)",
        "50k messages, last invalid (pydantic path)",
        "1M tiny messages (3M values; refused)",
    ):
        expr, kind = AT_LIMITS[name]
        print(f"- {name}: " + child(expr, kind, "stall"))


if __name__ == "__main__":
    main()

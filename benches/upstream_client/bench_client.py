"""Upstream-client micro benchmark: our Http1Pool vs the hyperproto prototype (two bridges).

One process (pin it: taskset -c 0), uvloop, CONC requests in flight for DURATION s per round,
rounds interleaved (ours, naive, batched, ...) REPEAT times. Per round: req/s, CPU us/request
for the whole process (time.process_time: all threads on Linux; cross-checked with
/proc/self/stat utime+stime), the main (event loop) thread (time.thread_time, /proc task stat)
and the tokio thread (/proc/self/task/<tid>/stat).

  taskset -c 1 python -m gateway mock-upstream --port 18123 &
  taskset -c 0 python bench_client.py [--modes ours,naive,batched] [--repeat 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import threading
import time

import hyperproto
import uvloop

from gateway.proxy.http1 import Http1Pool
from gateway.proxy.upstream import _header_block

HOST, PORT = "127.0.0.1", 18123
ORIGIN = f"http://{HOST}:{PORT}"
PATH = "/v1/chat/completions"
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, separators=(",", ":")
).encode()
HEADERS = {"Authorization": "Bearer sk-mock", "Content-Type": "application/json"}
# what _header_block adds for our client; sent by the hyper client too (hyper adds Host and
# Content-Length itself)
HYPER_HEADERS = list(HEADERS.items()) + [("User-Agent", "gateway"), ("Accept-Encoding", "gzip, deflate")]
MAX_BODY = 64 * 1024 * 1024
CANNED = b"x" * 573  # the mock's chat answer is 573 bytes
TICK = os.sysconf("SC_CLK_TCK")


MOCK_PID = 0


def task_ticks(tid: int | None = None, path: str = "", part: str = "") -> int:
    path = path or ("/proc/self/stat" if tid is None else f"/proc/self/task/{tid}/stat")
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    if part == "sys":
        return int(fields[12])
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def cpu0(core: int = 0) -> tuple[int, int]:
    """(busy, steal) ticks of a core (user nice system irq softirq; steal)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                return v[0] + v[1] + v[2] + v[5] + v[6], v[7]
    return 0, 0


def ctx_switches(tid: int) -> int:
    total = 0
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if "ctxt_switches" in line:
                total += int(line.split()[1])
    return total


class Runner:
    def __init__(self, mode: str, loop: asyncio.AbstractEventLoop) -> None:
        self.mode = mode
        self.tid = None
        if mode == "null-py":  # the driver's floor: a future answered by the loop itself
            self.loop = loop
            self.one = self.null_py
        elif mode == "ours":
            self.pool = Http1Pool(ssl.create_default_context(), 10.0, size=64)
            self.origin = ("http", HOST, PORT)
            self.head = f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n".encode("latin-1")
            self.one = self.ours
        else:
            bridge, submit, own = {
                "naive": ("naive", "direct", False),  # hyper-util legacy pooled Client
                "batched": ("batched", "direct", False),
                "batched-submit": ("batched", "batched", False),
                "naive-own": ("naive", "direct", True),  # own pool of hyper::client::conn::http1
                "batched-own": ("batched", "direct", True),
                "batched-own-submit": ("batched", "batched", True),
                # no Python in the loop: tokio tasks post back to back (the client without a bridge)
                "native": ("batched", "direct", False),
                "native-own": ("batched", "direct", True),
                # no HTTP: the tokio task answers a canned 573-byte body at once (bridge alone)
                "null-naive": ("naive", "direct", None),
                "null-batched": ("batched", "direct", None),
            }[mode]
            self.client = hyperproto.Client(
                loop,
                bridge=bridge,
                submit=submit,
                pool_size=64,
                max_body=MAX_BODY,
                own_pool=f"{HOST}:{PORT}" if own else None,
                null_body=CANNED if own is None else None,
            )
            self.tid = self.client.tid
            if bridge == "batched":
                loop.add_reader(self.client.fd, self.client.drain)
            self.one = self.hyper_post if submit == "direct" else self.hyper_post_batched
            self.flush_scheduled = False
            self.loop = loop

    async def null_py(self) -> int:
        fut = self.loop.create_future()
        self.loop.call_soon(fut.set_result, (200, {"content-type": "application/json"}, CANNED))
        status, headers, data = await fut
        assert status == 200 and data, status
        return len(data)

    async def ours(self) -> int:
        # as upstream.py's _post/_exchange (without the retry and the deadline timer)
        request = b"".join((self.head, _header_block(HEADERS, len(BODY)), BODY))
        conn, _ = await self.pool.acquire(self.origin)
        try:
            head = await conn.send(request, MAX_BODY)
            data = await conn.read_body()
        finally:
            self.pool.release(conn)
        assert head.status == 200 and data, head.status
        return len(data)

    async def hyper_post(self) -> int:
        status, headers, data = await self.client.post(ORIGIN, PATH, HYPER_HEADERS, BODY)
        assert status == 200 and data, status
        return len(data)

    def _flush(self) -> None:
        self.flush_scheduled = False
        self.client.flush()

    async def hyper_post_batched(self) -> int:
        fut = self.client.post(ORIGIN, PATH, HYPER_HEADERS, BODY)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)
        status, headers, data = await fut
        assert status == 200 and data, status
        return len(data)


async def run_round(runner: Runner, conc: int, warmup: float, duration: float) -> dict:
    done = 0
    stop = False
    native = runner.mode.startswith("native")
    if native:  # blocks the loop on purpose: only the tokio thread works
        runner.client.bench_native(conc, warmup, ORIGIN, PATH, HYPER_HEADERS, BODY)

    async def worker() -> None:
        nonlocal done
        one = runner.one
        while not stop:
            await one()
            done += 1

    tasks = [] if native else [asyncio.create_task(worker()) for _ in range(conc)]
    if not native:
        await asyncio.sleep(warmup)
    main_tid = threading.get_native_id()
    n0, w0, p0, t0 = done, time.perf_counter(), time.process_time(), time.thread_time()
    s0, m0 = task_ticks(), task_ticks(main_tid)
    y0 = task_ticks(part="sys")
    k0 = task_ticks(runner.tid) if runner.tid else 0
    b0, u0 = cpu0(), cpu0(1)
    x0 = task_ticks(path=f"/proc/{MOCK_PID}/stat") if MOCK_PID else 0
    c0 = ctx_switches(main_tid), ctx_switches(runner.tid) if runner.tid else 0
    if native:
        done += runner.client.bench_native(conc, duration, ORIGIN, PATH, HYPER_HEADERS, BODY)
    else:
        await asyncio.sleep(duration)
    n1, w1, p1, t1 = done, time.perf_counter(), time.process_time(), time.thread_time()
    s1, m1 = task_ticks(), task_ticks(main_tid)
    y1 = task_ticks(part="sys")
    k1 = task_ticks(runner.tid) if runner.tid else 0
    b1, u1 = cpu0(), cpu0(1)
    x1 = task_ticks(path=f"/proc/{MOCK_PID}/stat") if MOCK_PID else 0
    c1 = ctx_switches(main_tid), ctx_switches(runner.tid) if runner.tid else 0
    stop = True
    await asyncio.gather(*tasks)
    n = n1 - n0
    us = 1e6 / n
    return {
        "mode": runner.mode,
        "req_s": n / (w1 - w0),
        "cpu_us": (p1 - p0) * us,  # process_time: every thread
        "proc_stat_us": (s1 - s0) / TICK * us,
        "sys_us": (y1 - y0) / TICK * us,  # kernel part of the process total (/proc stime)
        "main_us": (t1 - t0) * us,  # thread_time of the loop thread
        "main_stat_us": (m1 - m0) / TICK * us,
        "tokio_us": (k1 - k0) / TICK * us,
        "cpu_util": (p1 - p0) / (w1 - w0),
        # core 0 busy with other processes (ticks/s / TICK) and hypervisor steal, as a share
        "others": ((b1[0] - b0[0]) - (s1 - s0)) / TICK / (w1 - w0),
        "steal": (b1[1] - b0[1]) / TICK / (w1 - w0),
        "mock": (x1 - x0) / TICK / (w1 - w0),  # the mock's CPU share
        "core1": (u1[0] - u0[0]) / TICK / (w1 - w0),  # the mock's core, busy share (mock + others)
        "main_cs": (c1[0] - c0[0]) / n,  # context switches per request, loop thread
        "tokio_cs": (c1[1] - c0[1]) / n,
    }


def fmt(r: dict) -> str:
    return (
        f"{r['mode']:>15} {r['req_s']:9.0f} req/s  cpu {r['cpu_us']:6.1f} us/req (stat {r['proc_stat_us']:6.1f}, sys {r['sys_us']:5.1f})"
        f"  main {r['main_us']:6.1f} (stat {r['main_stat_us']:6.1f})  tokio {r['tokio_us']:5.1f}"
        f"  util {r['cpu_util']:.2f} others {r['others']:.2f} steal {r['steal']:.2f} core1 {r['core1']:.2f} mock {r['mock']:.2f}  cs/req main {r['main_cs']:.2f} tokio {r['tokio_cs']:.2f}"
    )


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    modes = args.modes.split(",")
    runners = {mode: Runner(mode, loop) for mode in modes}
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    for rnd in range(args.repeat):
        # --rotate: start each round with the next mode (no mode always runs first)
        order = modes[rnd % len(modes) :] + modes[: rnd % len(modes)] if args.rotate else modes
        for mode in order:
            r = await run_round(runners[mode], args.conc, args.warmup, args.duration)
            results[mode].append(r)
            print(f"round {rnd + 1}", fmt(r), flush=True)
    print("\nmedians")
    for mode in modes:
        med = {k: statistics.median(r[k] for r in results[mode]) for k in results[mode][0] if k != "mode"}
        med["mode"] = mode
        print(fmt(med))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="ours,naive,batched")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--conc", type=int, default=32)
    parser.add_argument("--json", default="")
    parser.add_argument("--mock-pid", type=int, default=0)
    parser.add_argument("--rotate", action="store_true")
    args = parser.parse_args()
    MOCK_PID = args.mock_pid
    uvloop.run(main(args))

"""Run one load plan in this process, or split across several load processes when one core of
Python cannot drive the target hard enough; their recorders merge into one."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import RawArray
from typing import Any, cast

from gateway.bench.load import Driver, LoadPlan
from gateway.bench.stats import Recorder

# progress(seconds since the load started, requests measured so far, errors so far)
ProgressFn = Callable[[float, int, int], None]
PROGRESS_INTERVAL = 0.2
START_TIMEOUT = 60.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def split(plan: LoadPlan, processes: int) -> list[LoadPlan]:
    """Connections, rate and request count shared out as evenly as the integers allow."""
    processes = max(1, min(processes, plan.connections))
    plans = []
    for i in range(processes):
        connections = plan.connections // processes + (1 if i < plan.connections % processes else 0)
        limit = None
        if plan.max_requests is not None:
            limit = plan.max_requests // processes + (1 if i < plan.max_requests % processes else 0)
        rate = plan.rate / processes if plan.rate is not None else None
        plans.append(replace(plan, connections=connections, rate=rate, max_requests=limit))
    return plans


def run_plan(plan: LoadPlan, processes: int, progress: ProgressFn | None = None) -> Recorder:
    plans = split(plan, processes)
    if len(plans) == 1:
        return run_here(plan, progress)
    return run_in_processes(plans, progress)


def run_here(plan: LoadPlan, progress: ProgressFn | None) -> Recorder:
    async def main() -> Recorder:
        driver = Driver(plan)
        run = asyncio.get_running_loop().create_task(driver.run())
        while progress is not None and not run.done():
            await asyncio.wait([run], timeout=PROGRESS_INTERVAL)
            if driver.t0:
                progress(time.perf_counter() - driver.t0, driver.stats.requests, driver.stats.errors)
        return await run

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main())


def _child(plan: LoadPlan, barrier: Any, counters: Any, index: int, pipe: Any) -> None:
    """A load process: wait for the others, run, report progress and the recorder."""

    async def main() -> Recorder:
        driver = Driver(plan)
        run = asyncio.get_running_loop().create_task(driver.run(ready=lambda: barrier.wait(START_TIMEOUT)))
        while not run.done():
            await asyncio.wait([run], timeout=PROGRESS_INTERVAL)
            counters[2 * index] = driver.stats.requests
            counters[2 * index + 1] = driver.stats.errors
        return await run

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            pipe.send({"ok": runner.run(main()).to_dict()})
    except BaseException as exc:  # report, never hang the parent
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


def run_in_processes(plans: list[LoadPlan], progress: ProgressFn | None) -> Recorder:
    context = multiprocessing.get_context("spawn")  # no forked event-loop state
    barrier = context.Barrier(len(plans) + 1)
    counters = RawArray("q", 2 * len(plans))
    pipes: list[Connection] = []
    children = []
    for index, plan in enumerate(plans):
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(plan, barrier, counters, index, send), daemon=True)
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    with contextlib.suppress(threading.BrokenBarrierError):  # a child failed to start: its pipe says why
        barrier.wait(START_TIMEOUT)
    started = time.perf_counter()
    bound = plans[0].warmup + plans[0].duration + plans[0].timeout + 30.0
    results: dict[int, dict[str, Any]] = {}
    try:
        while len(results) < len(pipes):
            waiting = [pipe for i, pipe in enumerate(pipes) if i not in results]
            for ready in multiprocessing.connection.wait(waiting, timeout=PROGRESS_INTERVAL):
                index = pipes.index(cast(Connection, ready))
                try:
                    results[index] = cast(Connection, ready).recv()
                except EOFError:
                    results[index] = {"error": f"load process {index} died"}
            elapsed = time.perf_counter() - started
            if progress is not None:
                progress(elapsed, sum(counters[0::2]), sum(counters[1::2]))
            if elapsed > bound:
                raise RuntimeError("load processes did not finish in time")
    finally:
        for child in children:
            child.join(5)
            if child.is_alive():
                child.terminate()
    failures = [r["error"] for r in results.values() if "error" in r]
    if failures:
        raise RuntimeError("; ".join(failures))
    merged = Recorder()
    for index in sorted(results):
        merged.merge(Recorder.from_dict(results[index]["ok"]))
    return merged

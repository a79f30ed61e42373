"""Timers of one length share one loop timer (gateway/timers.py), and each still fires at its
own due time, cancelled ones never."""

from __future__ import annotations

import asyncio

import uvloop

from gateway.timers import timer_group


def test_each_timer_fires_at_its_own_time_and_cancelled_ones_never() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        group = timer_group(loop, 0.1)
        fired: dict[str, float] = {}
        start = loop.time()

        def note(name: str) -> None:
            fired[name] = loop.time() - start

        group.set("a", lambda: note("a"))
        await asyncio.sleep(0.03)
        group.set("b", lambda: note("b"))
        group.set("c", lambda: note("c"))
        group.cancel("a")  # the oldest: the loop timer armed for it finds nothing due
        await asyncio.sleep(0.03)
        group.set("d", lambda: note("d"))
        group.cancel("c")
        while len(fired) < 2 and loop.time() - start < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)  # past every due time: a cancelled one would have fired
        assert set(fired) == {"b", "d"}
        # never early; late only by the loop's own delays (a busy machine)
        assert 0.125 <= fired["b"] < 0.6 and 0.155 <= fired["d"] < 0.6 and fired["b"] <= fired["d"]
        assert group.handle is None and not group.due  # nothing left armed
        group.set("e", lambda: note("e"))  # the group arms itself again
        await asyncio.sleep(0.15)
        assert "e" in fired

    uvloop.run(main())


def test_one_failing_callback_does_not_strand_the_others() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        group = timer_group(loop, 0.02)
        fired: list[str] = []

        def boom() -> None:
            raise RuntimeError("boom")

        group.set("bad", boom)
        group.set("good", lambda: fired.append("good"))
        await asyncio.sleep(0.1)
        assert fired == ["good"]

    uvloop.run(main())


def test_each_loop_gets_its_own_groups() -> None:
    seen = []

    async def main() -> None:
        group = timer_group(asyncio.get_running_loop(), 0.01)
        seen.append(group)
        done = asyncio.Event()
        group.set("x", done.set)
        await asyncio.wait_for(done.wait(), 1)

    uvloop.run(main())
    uvloop.run(main())
    assert seen[0] is not seen[1] and seen[0].loop is not seen[1].loop

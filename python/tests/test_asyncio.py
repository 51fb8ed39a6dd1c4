"""asyncio through smslink.aio.AsyncEndpoint: events and room to send are awaited on
the event descriptor through the loop, without polling and without blocking other
tasks."""

from __future__ import annotations

import asyncio
import time
from typing import List, Tuple

import pytest

import smslink
from smslink import Endpoint, MessageReceived, StatusChanged
from smslink.aio import AsyncEndpoint

from conftest import WAIT, start_pair


async def _acker(ep: AsyncEndpoint, want: int, texts: List[str]) -> None:
    """Receive `want` messages on `ep` and acknowledge each."""
    async for ev in ep.events():
        if isinstance(ev, MessageReceived):
            texts.append(ev.text or "")
            ep.ack(ev.link, ev.seq)
            if len(texts) == want:
                return


def test_events_and_send_through_a_small_ring() -> None:
    async def main() -> Tuple[List[str], List[int]]:
        im, bs = start_pair(capacity=3)
        async with AsyncEndpoint(im) as aim, AsyncEndpoint(bs) as abs_:
            texts: List[str] = []
            acker = asyncio.create_task(_acker(abs_, 20, texts))
            # 20 messages through 3 slots: send must wait for room 17 times.
            seqs = [(await aim.send("1", "2", f"a{i}", timeout=WAIT)).seq for i in range(20)]
            await asyncio.wait_for(acker, WAIT)
            assert aim.links == ["im"]
        assert im.closed and bs.closed
        return texts, seqs

    texts, seqs = asyncio.run(main())
    assert texts == [f"a{i}" for i in range(20)]
    assert seqs == list(range(1, 21))


def test_send_times_out_with_ring_full() -> None:
    async def main() -> None:
        ep = Endpoint([smslink.Link("im", "link test key, 16+", insecure_plaintext=True, listen="127.0.0.1:0", default=True, capacity=1)])
        async with AsyncEndpoint(ep) as aep:
            await aep.send("1", "2", "fills it")
            with pytest.raises(smslink.RingFull):
                await aep.send("1", "2", "no room", timeout=0.1)

    asyncio.run(main())


def test_a_sender_that_reads_no_events_still_gets_room() -> None:
    """With room for 16 events and 3 statuses per message, the hub's queue is full
    long before 60 messages are through; a sender waiting for room is still woken."""

    async def main() -> List[str]:
        im, bs = start_pair(capacity=2, event_capacity=16)
        async with AsyncEndpoint(im) as aim, AsyncEndpoint(bs) as abs_:
            texts: List[str] = []
            acker = asyncio.create_task(_acker(abs_, 60, texts))
            for i in range(60):
                await aim.send("1", "2", f"s{i}", timeout=WAIT)
            await asyncio.wait_for(acker, WAIT)
            return texts

    assert asyncio.run(main()) == [f"s{i}" for i in range(60)]


def test_waiting_for_events_does_not_busy_poll() -> None:
    async def main() -> Tuple[float, int]:
        async with AsyncEndpoint(Endpoint([smslink.Link("im", "link test key, 16+", insecure_plaintext=True, listen="127.0.0.1:0")])) as ep:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            cpu = time.process_time()
            assert await ep.next_event(timeout=0.5) is None
            used = time.process_time() - cpu
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            return used, ticks

    used, ticks = asyncio.run(main())
    assert ticks >= 10, "other tasks ran while the endpoint waited"
    assert used < 0.25, f"{used:.3f} s of CPU for a 0.5 s idle wait"


def test_events_end_when_the_endpoint_closes() -> None:
    async def main() -> List[object]:
        im, bs = start_pair()
        aim = AsyncEndpoint(im)
        seen: List[object] = []
        up = asyncio.Event()

        async def consume() -> None:
            async for ev in aim.events():
                seen.append(ev)
                if isinstance(ev, smslink.LinkUp):
                    up.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(up.wait(), WAIT)
        bs.close(0)
        await aim.close(0)
        await asyncio.wait_for(task, WAIT)
        return seen

    seen = asyncio.run(main())
    assert isinstance(seen[0], smslink.LinkUp)


def test_status_changes_arrive_as_events() -> None:
    async def main() -> List[str]:
        im, bs = start_pair()
        async with AsyncEndpoint(im) as aim, AsyncEndpoint(bs) as abs_:
            texts: List[str] = []
            acker = asyncio.create_task(_acker(abs_, 1, texts))
            r = await aim.send("1", "2", "x", client_ref=5)
            states = []
            async for ev in aim.events():
                if isinstance(ev, StatusChanged) and ev.seq == r.seq:
                    assert ev.client_ref == 5
                    states.append(ev.state)
                    if ev.state == "processed":
                        break
            await acker
            return states

    assert asyncio.run(main()) == ["sent", "confirmed", "processed"]


def test_one_endpoint_across_two_event_loops() -> None:
    im, bs = start_pair()
    aim, abs_ = AsyncEndpoint(im), AsyncEndpoint(bs)
    try:
        for round_ in range(2):

            async def once() -> str:
                texts: List[str] = []
                acker = asyncio.create_task(_acker(abs_, 1, texts))
                await aim.send("1", "2", f"loop {round_}")
                await asyncio.wait_for(acker, WAIT)
                return texts[0]

            assert asyncio.run(once()) == f"loop {round_}"
    finally:
        bs.close(0)
        im.close(0)


def test_small_event_queue_back_pressures_and_loses_nothing() -> None:
    """With room for only 16 events, a slow async reader still gets every message
    in order: the hub stops reading, the node holds the rest in its ring."""

    async def main() -> List[str]:
        im = Endpoint(
            [smslink.Link("im", "link test key, 16+", insecure_plaintext=True, listen="127.0.0.1:0", default=True, expected_peer="bs")],
            event_capacity=16,
        )
        addr = im.local_addr("im")
        assert addr is not None
        bs = smslink.BufferServer(
            [smslink.Link("bs", "link test key, 16+", insecure_plaintext=True, dial=addr, default=True, expected_peer="im")],
            status_events=[],
        )
        async with AsyncEndpoint(im) as aim, AsyncEndpoint(bs) as abs_:
            n = 200
            for i in range(n):
                await abs_.send("+61400000001", "12345", f"mo{i}")
            got: List[str] = []
            async for ev in aim.events():
                if isinstance(ev, MessageReceived):
                    got.append(ev.text or "")
                    aim.ack(ev.link, ev.seq)
                    if len(got) % 50 == 0:
                        await asyncio.sleep(0.05)  # a slow consumer, now and then
                    if len(got) == n:
                        break
            return got

    assert asyncio.run(main()) == [f"mo{i}" for i in range(200)]


def test_closing_wakes_a_sender_waiting_for_room() -> None:
    async def main() -> None:
        ep = Endpoint([smslink.Link("im", "link test key, 16+", insecure_plaintext=True, listen="127.0.0.1:0", default=True, capacity=1)])
        aep = AsyncEndpoint(ep)
        await aep.send("1", "2", "fills it")
        waiting = asyncio.create_task(aep.send("1", "2", "waits"))
        for _ in range(3):
            await asyncio.sleep(0)  # let it run until it waits for room
        assert not waiting.done()
        await aep.close(0)
        with pytest.raises(smslink.ClosedError):
            await asyncio.wait_for(waiting, WAIT)

    asyncio.run(main())


def test_one_async_spelling() -> None:
    """asyncio lives in smslink.aio only: the endpoint has no async methods of its own."""
    for name in ("events", "send_async", "next_event_async"):
        assert not hasattr(Endpoint, name), name
    assert smslink.aio.__all__ == ["AsyncEndpoint"]

"""Blocking calls release the GIL: other Python threads run while one waits."""

from __future__ import annotations

import threading
import time
from typing import List, Optional, Tuple

from smslink import Endpoint, MessageReceived

from conftest import WAIT

Pair = Tuple[Endpoint, Endpoint]


def test_next_event_releases_the_gil(pair: Pair) -> None:
    im, bs = pair
    got: List[Optional[object]] = []
    entered = threading.Event()

    def waiter() -> None:
        entered.set()
        got.append(bs.next_event(timeout=WAIT))

    t = threading.Thread(target=waiter)
    t.start()
    assert entered.wait(WAIT)
    # Pure-Python work on this thread while the other one is blocked inside
    # next_event: with the GIL held there, this loop could not run until WAIT.
    spins = 0
    until = time.monotonic() + 0.3
    while time.monotonic() < until:
        spins += 1
    assert t.is_alive() and not got, "the waiter had nothing to return yet"
    assert spins > 10_000
    im.send("1", "2", "wake up")
    t.join(WAIT)
    assert not t.is_alive()
    assert isinstance(got[0], MessageReceived) and got[0].text == "wake up"


def test_wait_for_room_releases_the_gil() -> None:
    from conftest import start_pair, wait_event

    im, bs = start_pair(capacity=1)
    try:
        im.send("1", "2", "fills the ring")
        result: List[bool] = []
        t = threading.Thread(target=lambda: result.append(im.wait_for_room("im", timeout=WAIT)))
        t.start()
        # This thread acknowledges on the peer while the other one waits for room.
        ev = wait_event(bs, MessageReceived)
        bs.ack(ev.link, ev.seq)
        t.join(WAIT)
        assert result == [True]
    finally:
        bs.close(0)
        im.close(0)

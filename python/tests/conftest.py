"""Shared helpers: endpoints joined on loopback, and waiting for events with a
deadline (never a sleep)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, List, Optional, Tuple, Type, TypeVar

import pytest

import smslink
from smslink import Endpoint, Link

PSK = "python test key, 16+"
WAIT = 10.0

E = TypeVar("E")


def link(name: str, peer: str, **kw: object) -> Link:
    kw.setdefault("heartbeat", 0.2)
    kw.setdefault("dead_after", 1.0)
    # TLS has its own tests (test_tls.py); elsewhere both ends share one host.
    kw.setdefault("insecure_plaintext", True)
    return Link(name, PSK, expected_peer=peer, **kw)  # type: ignore[arg-type]


def wait_event(
    ep: Endpoint,
    kind: Type[E],
    pred: Callable[[E], bool] = lambda e: True,
    timeout: float = WAIT,
    seen: Optional[List[object]] = None,
) -> E:
    """The first event of `kind` matching `pred`; other events go to `seen`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind.__name__} within {timeout}s; saw {seen}")
        ev = ep.next_event(timeout=left)
        if isinstance(ev, kind) and pred(ev):
            return ev
        if seen is not None and ev is not None:
            seen.append(ev)


def eventually(check: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Whether `check()` holds within `timeout`: for snapshots the node publishes
    once per loop turn (statistics), which have no event of their own."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not check():
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.005)
    return True


def start_pair(
    capacity: int = 255, **im_kw: object
) -> Tuple[Endpoint, Endpoint]:
    """An IM-side endpoint listening and a buffer-server-side one dialling it."""
    im = Endpoint(
        [link("im", "bs", listen="127.0.0.1:0", default=True, capacity=capacity)],
        reconnect_min=0.02,
        reconnect_max=0.2,
        **im_kw,  # type: ignore[arg-type]
    )
    addr = im.local_addr("im")
    assert addr is not None
    bs = smslink.BufferServer(
        [link("bs", "im", dial=addr, default=True, capacity=capacity)],
        reconnect_min=0.02,
        reconnect_max=0.2,
    )
    return im, bs


@pytest.fixture
def pair() -> Iterator[Tuple[Endpoint, Endpoint]]:
    im, bs = start_pair()
    wait_event(im, smslink.LinkUp)
    wait_event(bs, smslink.LinkUp)
    yield im, bs
    bs.close(0)
    im.close(0)

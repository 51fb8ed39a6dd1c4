"""asyncio for :class:`smslink.Endpoint`, without polling.

One hub per endpoint and event loop watches the endpoint's event descriptor
(``loop.add_reader``). When it turns readable the hub clears it, moves waiting
events into its queue (at most ``endpoint.event_capacity`` of them: beyond that it
stops reading, so the node back-pressures the peer as it would for a slow
blocking reader) and wakes every task waiting for an event or for room to send.
Every 'processed' status change is an event, so a full link's waiters wake as
soon as it has room, even when the endpoint was told not to report statuses.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, AsyncIterator, Deque, List, Optional

from ._smslink import ClosedError, Receipt, RingFull

if TYPE_CHECKING:
    from . import Endpoint, Event

__all__ = ["AsyncEndpoint", "events", "next_event", "send"]


class _Hub:
    def __init__(self, endpoint: "Endpoint", loop: asyncio.AbstractEventLoop) -> None:
        self.endpoint = endpoint
        self.loop = loop
        self.fd = endpoint.fileno()
        self.queue: Deque["Event"] = collections.deque()
        self.limit = endpoint.event_capacity
        self.waiters: List["asyncio.Future[None]"] = []
        self.reading = False
        self._resume()

    def _resume(self) -> None:
        if not self.reading and not self.loop.is_closed():
            self.loop.add_reader(self.fd, self._on_readable)
            self.reading = True
            # Readiness may have been consumed while we were not reading.
            self.loop.call_soon(self._on_readable)

    def _pause(self) -> None:
        if self.reading:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.fd)
            self.reading = False

    def _on_readable(self) -> None:
        ep = self.endpoint
        ep.clear_event_fd()
        while len(self.queue) < self.limit:
            batch = ep.poll_events(self.limit - len(self.queue))
            if not batch:
                break
            self.queue.extend(batch)
        if len(self.queue) >= self.limit:
            self._pause()
        elif ep.closed:
            # Nothing more will come: stop watching a descriptor that may go away.
            self._pause()
        self._wake()

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def take(self) -> "Optional[Event]":
        if not self.queue:
            return None
        ev = self.queue.popleft()
        if not self.reading and not self.endpoint.closed and len(self.queue) < self.limit:
            self._resume()
        return ev

    async def changed(self, timeout: Optional[float]) -> bool:
        """Wait for the next wake-up; False on timeout."""
        fut: "asyncio.Future[None]" = self.loop.create_future()
        self.waiters.append(fut)
        try:
            if timeout is None:
                await fut
            else:
                await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if fut in self.waiters:
                self.waiters.remove(fut)

    def detach(self) -> None:
        self._pause()
        self._wake()


def _hub(endpoint: "Endpoint") -> _Hub:
    loop = asyncio.get_running_loop()
    hub: Optional[_Hub] = getattr(endpoint, "_aio_hub", None)
    if hub is None or hub.loop is not loop:
        if hub is not None:
            hub.detach()
        hub = _Hub(endpoint, loop)
        endpoint._aio_hub = hub  # type: ignore[attr-defined]
    elif not hub.reading and not endpoint.closed and len(hub.queue) < hub.limit:
        hub._resume()
    return hub


def _remaining(deadline: Optional[float], loop: asyncio.AbstractEventLoop) -> Optional[float]:
    if deadline is None:
        return None
    return max(0.0, deadline - loop.time())


async def next_event(endpoint: "Endpoint", timeout: Optional[float] = None) -> "Optional[Event]":
    """The next event; None after ``timeout`` seconds, or once closed and drained."""
    hub = _hub(endpoint)
    deadline = None if timeout is None else hub.loop.time() + timeout
    while True:
        ev = hub.take()
        if ev is not None:
            return ev
        if endpoint.closed:
            # The node's last events may still be waiting behind the descriptor.
            rest = endpoint.poll_events()
            hub.queue.extend(rest)
            ev = hub.take()
            return ev
        left = _remaining(deadline, hub.loop)
        if left == 0.0:
            return None
        await hub.changed(left)


async def events(endpoint: "Endpoint") -> AsyncIterator["Event"]:
    """Every event until the endpoint is closed."""
    while True:
        ev = await next_event(endpoint)
        if ev is None:
            return
        yield ev


async def send(
    endpoint: "Endpoint",
    sender: str,
    recipient: str,
    text: Optional[str] = None,
    data: Optional[bytes] = None,
    client_ref: int = 0,
    link: Optional[str] = None,
    timeout: Optional[float] = None,
) -> Receipt:
    """``endpoint.send``, waiting while the link is full (RingFull after ``timeout``)."""
    hub = _hub(endpoint)
    deadline = None if timeout is None else hub.loop.time() + timeout
    while True:
        try:
            return endpoint.send(sender, recipient, text, data, client_ref, link)
        except RingFull:
            if endpoint.closed:
                raise ClosedError("the endpoint was closed while waiting for room") from None
            left = _remaining(deadline, hub.loop)
            if left == 0.0 or not await hub.changed(left):
                raise


class AsyncEndpoint:
    """An endpoint seen from asyncio: ``await ep.send(...)`` waits for room,
    ``async for event in ep.events()``, ``await ep.next_event()``; the rest is the
    wrapped :class:`smslink.Endpoint` (``ack``, ``link_stats``, ...).

        async with AsyncEndpoint(smslink.Endpoint([...])) as ep:
            await ep.send("12345", "+61400000001", "hello")
    """

    def __init__(self, endpoint: "Endpoint") -> None:
        self.endpoint = endpoint

    async def send(
        self,
        sender: str,
        recipient: str,
        text: Optional[str] = None,
        data: Optional[bytes] = None,
        client_ref: int = 0,
        link: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Receipt:
        return await send(
            self.endpoint, sender, recipient, text=text, data=data, client_ref=client_ref,
            link=link, timeout=timeout,
        )

    def events(self) -> AsyncIterator["Event"]:
        return events(self.endpoint)

    async def next_event(self, timeout: Optional[float] = None) -> "Optional[Event]":
        return await next_event(self.endpoint, timeout)

    def ack(self, link: str, seq: int, error_code: Optional[int] = None) -> None:
        self.endpoint.ack(link, seq, error_code)

    async def close(self, flush_timeout: float = 1.0) -> bool:
        """Close without blocking the loop (the flush runs in a worker thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.endpoint.close, flush_timeout)

    async def __aenter__(self) -> "AsyncEndpoint":
        return self

    async def __aexit__(self, *_args: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self.endpoint, name)

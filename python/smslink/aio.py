"""asyncio for smslink: :class:`AsyncEndpoint` wraps an :class:`smslink.Endpoint`
(or a :class:`smslink.BufferServer`)::

    async with AsyncEndpoint(smslink.Endpoint([...])) as ep:
        receipt = await ep.send("12345", "+61400000001", "hello")  # waits while full
        async for event in ep.events():  # ends when the endpoint is closed
            ...

Nothing here polls or blocks the event loop. One hub per wrapper and event loop
watches the endpoint's event descriptor (``loop.add_reader``); when it turns
readable the hub clears it, moves waiting events into its queue and wakes every
task waiting for an event or for room to send. The queue holds at most
``endpoint.event_capacity`` events: beyond that the hub stops taking events, so the
node back-pressures the peer as it would for a slow blocking reader, but it keeps
watching the descriptor while a sender waits for room (the node signals it when the
peer has processed messages), so sending never depends on someone reading events.

Wrap an endpoint once, and do not mix the wrapper with the endpoint's blocking
``next_event``/``poll_events``: each event goes to one reader.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, AsyncIterator, Deque, List, Optional

from ._smslink import Endpoint, LinkStats, Receipt, RingFull, SmscStats

if TYPE_CHECKING:
    from . import Event

__all__ = ["AsyncEndpoint"]


class _Hub:
    """The endpoint's descriptor watched from one event loop."""

    def __init__(self, endpoint: Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        self.endpoint = endpoint
        self.loop = loop
        self.fd = endpoint.fileno()
        self.queue: Deque["Event"] = collections.deque()
        self.limit = endpoint.event_capacity
        self.waiters: List["asyncio.Future[None]"] = []
        self.room_waiters = 0
        self.reading = False
        self.update()

    def update(self) -> None:
        """Watch the descriptor while events fit in the queue or a sender waits."""
        want = (
            not self.endpoint.closed
            and not self.loop.is_closed()
            and (len(self.queue) < self.limit or self.room_waiters > 0)
        )
        if want and not self.reading:
            self.loop.add_reader(self.fd, self._on_readable)
            self.reading = True
            # Readiness may have been consumed while we were not reading.
            self.loop.call_soon(self._on_readable)
        elif not want and self.reading:
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
        self.update()
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
        if not self.reading:
            self.update()
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

    def detach(self) -> "Deque[Event]":
        """Stop watching (another loop takes over); returns the events queued here."""
        self.limit = 0  # nothing more is read into this hub
        self.room_waiters = 0
        self.update()
        self._wake()
        queued, self.queue = self.queue, collections.deque()
        return queued


class AsyncEndpoint:
    """An endpoint seen from asyncio: ``await send(...)`` waits for room,
    ``async for event in events()``, ``await next_event()``, ``await close()``; the
    calls that never block (``ack``, ``route``, statistics) are here too, and
    everything else is on ``endpoint``.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._hub: Optional[_Hub] = None

    def _hub_here(self) -> _Hub:
        loop = asyncio.get_running_loop()
        hub = self._hub
        if hub is None or hub.loop is not loop:
            queued = hub.detach() if hub is not None else collections.deque()
            hub = self._hub = _Hub(self.endpoint, loop)
            hub.queue.extend(queued)
        return hub

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
        """``Endpoint.send``, waiting (without blocking the loop) while the link is
        full. Raises :class:`smslink.RingFull` if there is still no room after
        ``timeout`` seconds (None: wait as long as it takes), and
        :class:`smslink.ClosedError` once the endpoint is closed."""
        hub = self._hub_here()
        deadline = None if timeout is None else hub.loop.time() + timeout
        while True:
            try:
                return self.endpoint.send(sender, recipient, text, data, client_ref, link)
            except RingFull:
                left = None if deadline is None else max(0.0, deadline - hub.loop.time())
                if left == 0.0:
                    raise
                hub.room_waiters += 1
                hub.update()
                try:
                    woke = await hub.changed(left)
                finally:
                    hub.room_waiters -= 1
                    hub.update()
                if not woke and not self.endpoint.closed:
                    raise

    async def next_event(self, timeout: Optional[float] = None) -> "Optional[Event]":
        """The next event; None after ``timeout`` seconds, or once closed and drained."""
        hub = self._hub_here()
        deadline = None if timeout is None else hub.loop.time() + timeout
        while True:
            ev = hub.take()
            if ev is not None:
                return ev
            if self.endpoint.closed:
                # The node's last events may still be waiting behind the descriptor.
                hub.queue.extend(self.endpoint.poll_events())
                return hub.take()
            left = None if deadline is None else max(0.0, deadline - hub.loop.time())
            if left == 0.0:
                return None
            await hub.changed(left)

    async def events(self) -> AsyncIterator["Event"]:
        """Every event, as it comes, until the endpoint is closed."""
        while True:
            ev = await self.next_event()
            if ev is None:
                return
            yield ev

    def ack(self, link: str, seq: int, error_code: Optional[int] = None) -> None:
        """``Endpoint.ack`` (it never blocks)."""
        self.endpoint.ack(link, seq, error_code)

    def free_slots(self, link: str) -> int:
        return self.endpoint.free_slots(link)

    def route(self, recipient: str) -> Optional[str]:
        return self.endpoint.route(recipient)

    def local_addr(self, link: str) -> Optional[str]:
        return self.endpoint.local_addr(link)

    def link_stats(self, link: str) -> LinkStats:
        return self.endpoint.link_stats(link)

    def smsc_stats(self) -> Optional[SmscStats]:
        return self.endpoint.smsc_stats()

    @property
    def links(self) -> List[str]:
        return self.endpoint.links

    @property
    def closed(self) -> bool:
        return self.endpoint.closed

    async def close(self, flush_timeout: float = 1.0) -> bool:
        """``Endpoint.close`` without blocking the loop (the flush runs in a worker
        thread); tasks waiting for events or room wake up (``events()`` ends,
        ``send`` raises :class:`smslink.ClosedError`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.endpoint.close, flush_timeout)

    async def __aenter__(self) -> "AsyncEndpoint":
        return self

    async def __aexit__(self, *_args: object) -> None:
        await self.close()

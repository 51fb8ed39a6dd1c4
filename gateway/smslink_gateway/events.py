"""The communication-buffer events the gateway reacts to, independent of how the
endpoint spells them, and the thin adapter around an smslink endpoint."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional, Union


@dataclass(frozen=True)
class LinkUp:
    link: str


@dataclass(frozen=True)
class LinkDown:
    link: str


@dataclass(frozen=True)
class SmsIn:
    """A mobile-originated SMS, to be acknowledged once stored."""

    link: str
    seq: int
    sender: str
    recipient: str
    text: str


@dataclass(frozen=True)
class SmsStatus:
    """A mobile-terminated SMS moved on; final once accepted or rejected."""

    link: str
    seq: int
    client_ref: int
    state: str
    error_code: Optional[int]
    accepted: Optional[bool]

    @property
    def rejected(self) -> bool:
        if self.accepted:
            return False
        return self.state.lower() == "processed" or bool(self.error_code)

    @property
    def final(self) -> bool:
        return bool(self.accepted) or self.rejected


Event = Union[LinkUp, LinkDown, SmsIn, SmsStatus]


class RingFull(Exception):
    """The sending ring of the link toward this number is full (or the endpoint is
    momentarily busy); keep the message and retry later."""


class AckLater(Exception):
    """The endpoint could not take the acknowledgement right now; retry shortly."""


class SendFailed(Exception):
    """The endpoint refused the message for good (no route, bad number, too long...)."""


@dataclass(frozen=True)
class Receipt:
    link: str
    seq: int


def normalize(ev: Any) -> Optional[Event]:
    """Translate an smslink event object into ours (by name, so that small API
    differences between module versions do not matter). Unknown kinds are ignored."""
    kind = type(ev).__name__
    link = str(getattr(ev, "link", ""))
    if kind == "LinkUp":
        return LinkUp(link)
    if kind == "LinkDown":
        return LinkDown(link)
    if kind in ("MessageReceived", "Received", "SmsIn"):
        text = getattr(ev, "text", None)
        if text is None:
            # A binary SMS: show what can be shown rather than lose it.
            data = getattr(ev, "data", None) or b""
            text = bytes(data).decode("utf-8", errors="replace")
        return SmsIn(link, int(ev.seq), str(ev.sender), str(ev.recipient), str(text))
    if kind in ("StatusChanged", "Status", "SmsStatus"):
        code = getattr(ev, "error_code", None)
        accepted = getattr(ev, "accepted", None)
        return SmsStatus(
            link,
            int(ev.seq),
            int(getattr(ev, "client_ref", 0)),
            str(getattr(ev, "state", "")),
            None if code is None else int(code),
            None if accepted is None else bool(accepted),
        )
    return None


class EndpointAdapter:
    """Wraps an `smslink.Endpoint` (or anything with its shape) for the gateway:
    `send` raises our `RingFull`/`SendFailed`, `events()` yields our event types."""

    def __init__(self, endpoint: Any) -> None:
        self.endpoint = endpoint
        self._ring_full: tuple[type[BaseException], ...] = ()
        self._busy: tuple[type[BaseException], ...] = ()
        self._refused: tuple[type[BaseException], ...] = ()
        try:
            import smslink

            self._refused = (smslink.SmslinkError,)
            self._ring_full = tuple(
                getattr(smslink, n) for n in ("RingFull", "BusyError", "ClosedError") if hasattr(smslink, n)
            )
            self._busy = tuple(getattr(smslink, n) for n in ("BusyError",) if hasattr(smslink, n))
        except ImportError:
            pass

    def send(self, sender: str, recipient: str, text: str, client_ref: int) -> Receipt:
        try:
            r = self.endpoint.send(sender, recipient, text=text, client_ref=client_ref)
        except RingFull:
            raise
        except self._ring_full as e:
            raise RingFull(str(e)) from e
        except SendFailed:
            raise
        except self._refused as e:
            # The PC user reads this; the operator's detail goes to the log.
            kind = type(e).__name__
            if kind == "NoRoute":
                raise SendFailed(f"no SMS link serves {recipient}") from e
            if kind == "InvalidMessage":
                raise SendFailed(f"the message does not fit in an SMS ({e})") from e
            raise SendFailed(str(e)) from e
        except (ValueError, TypeError) as e:
            raise SendFailed(str(e)) from e
        return Receipt(str(r.link), int(r.seq))

    def route(self, recipient: str) -> Optional[str]:
        """The link the endpoint would send to `recipient` on (None: no route)."""
        fn = getattr(self.endpoint, "route", None)
        if fn is None:
            return None
        link = fn(recipient)
        return None if link is None else str(link)

    def ack(self, link: str, seq: int) -> None:
        try:
            self.endpoint.ack(link, seq)
        except self._busy as e:
            raise AckLater(str(e)) from e

    async def events(self) -> AsyncIterator[Event]:
        native = getattr(self.endpoint, "events", None)
        if native is not None:
            async for ev in native():
                n = normalize(ev)
                if n is not None:
                    yield n
            return
        # Fallback: a reader thread blocking in next_event (which releases the GIL).
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                try:
                    ev = self.endpoint.next_event(0.2)
                except Exception as e:  # the endpoint stopped: tell the consumer
                    loop.call_soon_threadsafe(queue.put_nowait, e)
                    return
                if ev is not None:
                    loop.call_soon_threadsafe(queue.put_nowait, ev)

        t = threading.Thread(target=reader, name="smslink-events", daemon=True)
        t.start()
        try:
            while True:
                ev = await queue.get()
                if isinstance(ev, Exception):
                    return
                n = normalize(ev)
                if n is not None:
                    yield n
        finally:
            stop.set()

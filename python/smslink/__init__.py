"""smslink: the pipelined, self-synchronising SMS buffer link, from Python.

An :class:`Endpoint` runs the IM side of a link (or, given ``smsc=``, a buffer
server): ``send`` returns at once with a :class:`Receipt` or raises
:class:`RingFull`; received messages, status changes and link up/down arrive as
events (``next_event``, or ``async for event in endpoint.events()``).

    import smslink

    with smslink.Endpoint([smslink.Link("im", "key", listen="127.0.0.1:7000",
                                        default=True)]) as ep:
        ep.send("12345", "+61400000001", "hello")
        event = ep.next_event(timeout=5)
"""

from __future__ import annotations

from typing import AsyncIterator, Optional, Union

from . import _smslink
from ._smslink import (
    BusyError,
    ClosedError,
    CodecError,
    ConfigError,
    InvalidMessage,
    Link,
    LinkDown,
    LinkStats,
    LinkUp,
    MessageReceived,
    NetworkError,
    NoRoute,
    Receipt,
    RingFull,
    RxCursors,
    Smsc,
    SmscDown,
    SmscStats,
    SmscUp,
    SmscViolation,
    SmslinkError,
    StatusChanged,
    TxCursors,
    UnknownLink,
)

#: Every kind of event an endpoint reports.
Event = Union[LinkUp, LinkDown, MessageReceived, StatusChanged, SmscUp, SmscDown, SmscViolation]

__all__ = [
    "BufferServer",
    "BusyError",
    "ClosedError",
    "CodecError",
    "ConfigError",
    "Endpoint",
    "Event",
    "InvalidMessage",
    "Link",
    "LinkDown",
    "LinkStats",
    "LinkUp",
    "MessageReceived",
    "NetworkError",
    "NoRoute",
    "Receipt",
    "RingFull",
    "RxCursors",
    "Smsc",
    "SmscDown",
    "SmscStats",
    "SmscUp",
    "SmscViolation",
    "SmslinkError",
    "StatusChanged",
    "TxCursors",
    "UnknownLink",
]


class Endpoint(_smslink.Endpoint):
    """A running smslink node; see the package docs and ``_smslink.pyi``.

    Adds asyncio to the compiled class: :meth:`events`, :meth:`send_async` and
    :meth:`next_event_async` wait on the endpoint's event descriptor through the
    running loop (``loop.add_reader``), never by polling. Use either the blocking
    ``next_event``/``poll_events`` or the asyncio methods on one endpoint, not both.
    """

    def events(self) -> AsyncIterator[Event]:
        """Every event, as it comes, until the endpoint is closed."""
        from . import aio

        return aio.events(self)

    async def next_event_async(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, or None after ``timeout`` seconds or once closed."""
        from . import aio

        return await aio.next_event(self, timeout)

    async def send_async(
        self,
        sender: str,
        recipient: str,
        text: Optional[str] = None,
        data: Optional[bytes] = None,
        client_ref: int = 0,
        link: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Receipt:
        """``send``, waiting (without blocking the loop) while the link is full.

        Raises :class:`RingFull` if there is still no room after ``timeout``
        seconds (None: wait as long as it takes).
        """
        from . import aio

        return await aio.send(
            self, sender, recipient, text=text, data=data, client_ref=client_ref,
            link=link, timeout=timeout,
        )


class BufferServer(Endpoint):
    """An :class:`Endpoint` in the buffer server's role.

    With ``smsc=Smsc(...)`` it logs in to the SMSC over CIMD2: MO messages from
    the SMSC go out on the first link and MT messages from the IM side are
    submitted. Without it, the application plays the SMSC: it sends MO with
    ``send`` and receives MT as :class:`MessageReceived` events.
    """

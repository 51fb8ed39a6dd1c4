"""smslink: the pipelined, self-synchronising SMS buffer link, from Python.

An :class:`Endpoint` runs the IM side of a link (or, given ``smsc=`` a
:class:`Smsc` (CIMD2) or :class:`Smpp`, a buffer server): ``send`` returns at once with a :class:`Receipt` or raises
:class:`RingFull`; received messages, status changes and link up/down arrive as
events (``next_event``; from asyncio, :class:`smslink.aio.AsyncEndpoint`).

    import smslink

    with smslink.Endpoint([smslink.Link("im", "key", listen="127.0.0.1:7000",
                                        default=True)]) as ep:
        ep.send("12345", "+61400000001", "hello")
        event = ep.next_event(timeout=5)

The runtime's log lines go to the ``smslink.<target>`` loggers of :mod:`logging`
(``smslink.link``, ``smslink.smsc``, ``smslink.runtime``), each with its
``key=value`` fields as ``record.smslink_fields``.
"""

from __future__ import annotations

from typing import Union

from ._smslink import (
    BusyError,
    ClosedError,
    CodecError,
    ConfigError,
    Endpoint,
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
    Smpp,
    Smsc,
    SmscDown,
    SmscStats,
    SmscUp,
    SmscViolation,
    SmslinkError,
    StatusChanged,
    Durable,
    Report,
    TxCursors,
    UnknownLink,
    set_log_level,
)

from ._logs import route_logs

#: Every kind of event an endpoint reports.
Event = Union[LinkUp, LinkDown, MessageReceived, StatusChanged, Durable, Report, SmscUp, SmscDown, SmscViolation]

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
    "Smpp",
    "Smsc",
    "SmscDown",
    "SmscStats",
    "SmscUp",
    "SmscViolation",
    "SmslinkError",
    "StatusChanged",
    "Durable",
    "Report",
    "TxCursors",
    "UnknownLink",
    "route_logs",
    "set_log_level",
]


class BufferServer(Endpoint):
    """An :class:`Endpoint` in the buffer server's role.

    With ``smsc=Smsc(...)`` it logs in to the SMSC over CIMD2, with
    ``smsc=Smpp(...)`` it binds over SMPP 3.4: MO messages from the SMSC go out
    on the first link and MT messages from the IM side are submitted. Without it, the application plays the SMSC: it sends MO with
    ``send`` and receives MT as :class:`MessageReceived` events.
    """


# Imported last: `smslink.aio` after `import smslink`, without an import circle (aio
# imports only the compiled module).
from . import aio  # noqa: E402

route_logs()

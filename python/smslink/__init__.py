"""smslink: the pipelined, self-synchronising SMS buffer link, from Python.

An :class:`Endpoint` runs the IM side of a link (or, given ``smsc=`` a
:class:`Smsc` (CIMD2) or :class:`Smpp`, a buffer server): ``send`` returns at once with a :class:`Receipt` or raises
:class:`RingFull`; received messages, status changes and link up/down arrive as
events (``next_event``; from asyncio, :class:`smslink.aio.AsyncEndpoint`).

    import smslink

    link = smslink.Link("im", psk, listen="0.0.0.0:7000", default=True,
                        tls_cert="im.crt", tls_key="im.key",
                        tls_peer_fingerprint="<the buffer server's, from smslink keygen>")
    with smslink.Endpoint([link]) as ep:
        ep.send("12345", "+61400000001", "hello")
        event = ep.next_event(timeout=5)

The link runs TLS 1.3 (the side that dials is the TLS client), each side
checking the other's certificate by its pinned fingerprint or against a CA
(``tls_ca=``); ``insecure_plaintext=True`` runs it without encryption.

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
    sms_parts,
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
    "sms_parts",
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

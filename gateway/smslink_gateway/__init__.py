"""XMPP gateway component carrying chats to and from phones through smslink."""

from .component import Gateway, Route
from .events import (
    EndpointAdapter,
    EndpointClosed,
    LinkDown,
    LinkUp,
    RingFull,
    SendFailed,
    SmsBuffer,
    SmsIn,
    SmsStatus,
)
from .store import Store

__all__ = [
    "EndpointAdapter",
    "EndpointClosed",
    "Gateway",
    "LinkDown",
    "LinkUp",
    "RingFull",
    "Route",
    "SendFailed",
    "SmsBuffer",
    "SmsIn",
    "SmsStatus",
    "Store",
]

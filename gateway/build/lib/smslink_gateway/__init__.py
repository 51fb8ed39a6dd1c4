"""XMPP gateway component carrying chats to and from phones through smslink."""

from .component import Gateway, Route
from .events import EndpointAdapter, LinkDown, LinkUp, RingFull, SendFailed, SmsIn, SmsStatus
from .store import Store

__all__ = [
    "EndpointAdapter",
    "Gateway",
    "LinkDown",
    "LinkUp",
    "RingFull",
    "Route",
    "SendFailed",
    "SmsIn",
    "SmsStatus",
    "Store",
]

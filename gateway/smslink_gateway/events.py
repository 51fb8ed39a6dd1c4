"""The communication-buffer events the gateway reacts to, what it needs from the
buffer (`SmsBuffer`), and the adapter that gives an `smslink.Endpoint` that shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Optional, Protocol, Union

import smslink
from smslink.aio import AsyncEndpoint


@dataclass(frozen=True)
class LinkUp:
    link: str


@dataclass(frozen=True)
class LinkDown:
    link: str


@dataclass(frozen=True)
class SmsIn:
    """A mobile-originated SMS, to be acknowledged once stored. A long SMS comes
    whole; `incomplete` when some of its parts never arrived."""

    link: str
    seq: int
    sender: str
    recipient: str
    text: str
    incomplete: bool = False


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


@dataclass(frozen=True)
class SmsReport:
    """The SMSC's delivery report on an MT sent with `client_ref`: `state` is
    'delivered', 'failed', 'expired' or 'enroute' (not final)."""

    link: str
    client_ref: int
    state: str
    error_code: int = 0


Event = Union[LinkUp, LinkDown, SmsIn, SmsStatus, SmsReport]


class RingFull(Exception):
    """The sending ring of the link toward this number is full (or the endpoint is
    momentarily busy); keep the message and retry later."""


class AckLater(Exception):
    """The endpoint could not take the acknowledgement right now; retry shortly."""


class SendFailed(Exception):
    """The endpoint refused the message for good (no route, bad number, too long...)."""


class EndpointClosed(Exception):
    """The endpoint is closed: nothing can be sent or acknowledged any more, and
    retrying would not help (unlike `RingFull`)."""


@dataclass(frozen=True)
class Receipt:
    link: str
    seq: int


class SmsBuffer(Protocol):
    """What the gateway needs from the communication buffer, in its own terms: `send`
    raises `RingFull`, `SendFailed` or `EndpointClosed`; `ack` raises `AckLater` or
    `EndpointClosed`; `events()` yields `Event`s until the buffer is closed;
    `restored()` names the `client_ref`s of the MT a journal gave back at start
    (they go out again by themselves: the gateway must not send them twice)."""

    def send(self, sender: str, recipient: str, text: str, client_ref: int) -> Receipt: ...

    def route(self, recipient: str) -> Optional[str]: ...

    def ack(self, link: str, seq: int) -> None: ...

    def events(self) -> AsyncIterator[Event]: ...

    def restored(self) -> set[int]: ...


def normalize(ev: smslink.Event) -> Optional[Event]:
    """Translate an smslink event into ours. A buffer server's SMSC events are not
    the gateway's business (None)."""
    if isinstance(ev, smslink.LinkUp):
        return LinkUp(ev.link)
    if isinstance(ev, smslink.LinkDown):
        return LinkDown(ev.link)
    if isinstance(ev, smslink.MessageReceived):
        text = ev.text
        if text is None:
            # A binary SMS: show what can be shown rather than lose it.
            text = (ev.data or b"").decode("utf-8", errors="replace")
        return SmsIn(ev.link, ev.seq, ev.sender, ev.recipient, text, ev.incomplete)
    if isinstance(ev, smslink.StatusChanged):
        return SmsStatus(ev.link, ev.seq, ev.client_ref, ev.state, ev.error_code, ev.accepted)
    if isinstance(ev, smslink.Report):
        return SmsReport(ev.link, ev.client_ref, ev.state, ev.error_code)
    return None


class EndpointAdapter:
    """An `smslink.Endpoint` as the gateway's `SmsBuffer`."""

    def __init__(self, endpoint: smslink.Endpoint) -> None:
        self.endpoint = endpoint
        self._async = AsyncEndpoint(endpoint)
        # A node with a journal reports the MT it restored as durable before its
        # start returns: they are all queued now.
        self._early: list[smslink.Event] = []
        while batch := endpoint.poll_events():
            self._early.extend(batch)
        # client_ref -> seq of each restored MT.
        self._restored = {
            ev.client_ref: ev.seq for ev in self._early if isinstance(ev, smslink.Durable)
        }

    def send(self, sender: str, recipient: str, text: str, client_ref: int) -> Receipt:
        try:
            r = self.endpoint.send(sender, recipient, text=text, client_ref=client_ref)
        except (smslink.RingFull, smslink.BusyError) as e:
            raise RingFull(str(e)) from e
        except smslink.ClosedError as e:
            raise EndpointClosed(str(e)) from e
        # The PC user reads these; the operator's detail goes to the log.
        except smslink.NoRoute as e:
            raise SendFailed(f"no SMS link serves {recipient}") from e
        except smslink.InvalidMessage as e:
            raise SendFailed(f"the message cannot be sent as SMS ({e})") from e
        except (smslink.SmslinkError, ValueError) as e:
            raise SendFailed(str(e)) from e
        return Receipt(r.link, r.seq)

    def route(self, recipient: str) -> Optional[str]:
        """The link the endpoint would send to `recipient` on (None: no route)."""
        return self.endpoint.route(recipient)

    def ack(self, link: str, seq: int) -> None:
        try:
            self.endpoint.ack(link, seq)
        except smslink.BusyError as e:
            raise AckLater(str(e)) from e
        except smslink.ClosedError as e:
            raise EndpointClosed(str(e)) from e

    def restored(self) -> set[int]:
        return set(self._restored)

    def restored_seqs(self) -> dict[int, int]:
        """`restored()` with the seq each one has on its link."""
        return dict(self._restored)

    async def events(self) -> AsyncIterator[Event]:
        early, self._early = self._early, []
        for ev in early:
            n = normalize(ev)
            if n is not None:
                yield n
        async for ev in self._async.events():
            n = normalize(ev)
            if n is not None:
                yield n

"""The gateway's view of a real smslink endpoint: events matched by their smslink
types, and a closed endpoint that stops the sender instead of looking full."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest
import smslink

from smslink_gateway import Gateway, Store
from smslink_gateway.events import (
    EndpointAdapter,
    EndpointClosed,
    LinkUp,
    RingFull,
    SmsIn,
    SmsStatus,
    normalize,
)

WAIT = 10.0


@pytest.fixture
def pair() -> Iterator[Tuple[smslink.Endpoint, smslink.Endpoint]]:
    """An IM-side endpoint and a buffer-server-side one joined on loopback."""
    im = smslink.Endpoint(
        [smslink.Link("im", "link test key, 16+", insecure_plaintext=True, listen="127.0.0.1:0", default=True, expected_peer="bs")],
        reconnect_min=0.02,
    )
    addr = im.local_addr("im")
    assert addr is not None
    bs = smslink.Endpoint(
        [smslink.Link("bs", "link test key, 16+", insecure_plaintext=True, dial=addr, default=True, expected_peer="im")],
        reconnect_min=0.02,
    )
    try:
        yield im, bs
    finally:
        bs.close(0)
        im.close(0)


def next_of(ep: smslink.Endpoint, kind: type, state: str = "") -> Any:
    """The next event of `kind` (and StatusChanged `state`), within WAIT."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        ev = ep.next_event(timeout=deadline - time.monotonic())
        if isinstance(ev, kind) and (not state or getattr(ev, "state", "") == state):
            return ev
    raise AssertionError(f"no {kind.__name__} {state} within {WAIT} s")


def test_smslink_events_are_matched_by_type(
    pair: Tuple[smslink.Endpoint, smslink.Endpoint],
) -> None:
    im, bs = pair
    assert normalize(next_of(im, smslink.LinkUp)) == LinkUp("im")
    bs.send("+61400000001", "12345", "hi")
    bs.send("+61400000001", "12345", data=b"caf\xc3\xa9 \xff")
    got = [next_of(im, smslink.MessageReceived) for _ in range(2)]
    assert [normalize(e) for e in got] == [
        SmsIn("im", 1, "+61400000001", "12345", "hi"),
        SmsIn("im", 2, "+61400000001", "12345", "caf\u00e9 \ufffd"),
    ]
    im.ack("im", 1, error_code=300)
    status = normalize(next_of(bs, smslink.StatusChanged, "processed"))
    assert status == SmsStatus("bs", 1, 0, "processed", 300, False)
    assert status.final and status.rejected

    class LinkUpLookalike:
        """Named and shaped like an smslink event, but not one."""

        link = "au"

    LinkUpLookalike.__name__ = "LinkUp"
    assert normalize(LinkUpLookalike()) is None  # type: ignore[arg-type]


def test_a_journal_names_the_mt_it_gave_back_and_the_outbox_keeps_them(tmp_path: Path) -> None:
    """With a journal, a restarted gateway resends only the MT its endpoint lost:
    those the journal gave back go out again by themselves."""

    def endpoint() -> smslink.Endpoint:
        # Nobody listens on port 1: what is sent stays in the ring, durable.
        return smslink.Endpoint(
            [smslink.Link("au", "link test key, 16+", insecure_plaintext=True, dial="127.0.0.1:1", default=True)],
            journal_dir=str(tmp_path / "journal"),
        )

    store = Store(str(tmp_path / "gw.db"))
    refs = [store.outbox_put("12345", "+61400000001", f"mt {n}") for n in range(3)]
    ep = endpoint()
    adapter = EndpointAdapter(ep)
    assert adapter.restored() == set()
    for ref in refs[:2]:
        r = adapter.send("12345", "+61400000001", f"mt {ref}", ref)
        store.outbox_sent(ref, r.link, r.seq)
    deadline = time.monotonic() + 10
    durable: set[int] = set()
    while durable != set(refs[:2]):
        assert time.monotonic() < deadline, durable
        e = ep.next_event(timeout=0.5)
        if isinstance(e, smslink.Durable):
            durable.add(e.client_ref)
    # The third was handed over too, but the process ended before it was durable.
    store.outbox_sent(refs[2], "au", 3)
    ep.close(0)

    again = EndpointAdapter(endpoint())
    assert again.restored() == set(refs[:2])
    assert store.outbox_requeue_unfinished(frozenset(again.restored())) == 1
    assert [item.ref for item in store.outbox_queued()] == [refs[2]]
    again.endpoint.close(0)
    store.close()


def test_a_closed_endpoint_is_not_a_full_ring() -> None:
    ep = smslink.Endpoint([smslink.Link("im", "link test key, 16+", insecure_plaintext=True, listen="127.0.0.1:0", default=True, capacity=1)])
    adapter = EndpointAdapter(ep)
    adapter.send("12345", "+61400000001", "fills the ring", 1)
    with pytest.raises(RingFull):
        adapter.send("12345", "+61400000001", "no room", 2)
    ep.close(0)
    with pytest.raises(EndpointClosed) as closed:
        adapter.send("12345", "+61400000001", "closed", 3)
    assert not isinstance(closed.value, RingFull)
    assert isinstance(closed.value.__cause__, smslink.ClosedError)
    with pytest.raises(EndpointClosed):
        adapter.ack("im", 1)


def test_gateway_stops_sending_once_the_endpoint_is_closed(tmp_path: Path) -> None:
    """A full ring schedules a retry; a closed endpoint stops the sender and keeps
    the outbox for the next run (no XMPP server needed for the outbox)."""

    async def main() -> None:
        ep = smslink.Endpoint([smslink.Link("au", "link test key, 16+", insecure_plaintext=True, listen="127.0.0.1:0", default=True, capacity=1)])
        store = Store(str(tmp_path / "gw.db"))
        gw = Gateway(
            "sms.example.test", "secret", "127.0.0.1", 1,
            endpoint=ep, store=store, sms_number="12345", retry_interval=60,
        )
        try:
            store.outbox_put("12345", "+61400000001", "one")
            store.outbox_put("12345", "+61400000001", "two")
            gw.pump_outbox()
            assert [i.text for i in store.outbox_queued()] == ["two"], "one in the ring"
            assert gw._retry_handle is not None, "a full ring is retried later"
            ep.close(0)
            gw._retry()  # what the timer would do
            assert gw.sms_closed
            assert gw._retry_handle is None, "a closed endpoint is not retried"
            assert [i.text for i in store.outbox_queued()] == ["two"]
            gw.pump_outbox()
            assert gw._retry_handle is None
        finally:
            await gw.stop()
            store.close()

    asyncio.run(main())

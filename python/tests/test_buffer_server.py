"""The whole path with real parts: IM endpoint <-> buffer server <-> SMSC
simulator (CIMD2), both directions, rejections, and a WAN cut in between."""

from __future__ import annotations

import time
from typing import Iterator, List, Tuple

import pytest

import smslink
from smslink import BufferServer, Endpoint, MessageReceived, Smsc, StatusChanged
from smslink.testing import SmscSim, Wan

from conftest import WAIT, eventually, link, wait_event

Setup = Tuple[Endpoint, BufferServer, SmscSim]


@pytest.fixture
def chain() -> Iterator[Setup]:
    sim = SmscSim("gw", "pw")
    im = Endpoint([link("im", "bs", listen="127.0.0.1:0", default=True)])
    addr = im.local_addr("im")
    assert addr is not None
    bs = BufferServer(
        [link("bs", "im", dial=addr, default=True)],
        smsc=Smsc(sim.address, "gw", "pw", keepalive=0),
        reconnect_min=0.02,
        reconnect_max=0.2,
    )
    wait_event(bs, smslink.SmscUp)
    wait_event(im, smslink.LinkUp)
    yield im, bs, sim
    bs.close(0)
    im.close(0)
    sim.stop()


def test_mt_reaches_the_smsc_and_mo_reaches_the_im_side(chain: Setup) -> None:
    im, bs, sim = chain
    r = im.send("12345", "+61400000001", "to the phone")
    done = wait_event(im, StatusChanged, lambda s: s.state == "processed" and s.seq == r.seq)
    assert done.accepted
    [sms] = sim.accepted()
    assert (sms.sender, sms.recipient, sms.text) == ("12345", "+61400000001", "to the phone")
    sim.inject_mo("+61400000001", "12345", "reply from the phone")
    mo = wait_event(im, MessageReceived)
    assert (mo.sender, mo.recipient, mo.text) == ("+61400000001", "12345", "reply from the phone")
    im.ack(mo.link, mo.seq)
    assert sim.wait_for("mo_acked", 1, WAIT), sim.counters()
    assert eventually(lambda: getattr(bs.smsc_stats(), "mo_received", 0) == 1)
    stats = bs.smsc_stats()
    assert stats is not None and stats.logged_in and stats.mt_accepted == 1
    assert (stats.mo_unattributable, stats.mt_temporary_failures) == (0, 0)
    assert stats.resubmitted_after_restart == 0


def test_smsc_rejection_comes_back_with_its_code(chain: Setup) -> None:
    im, _, sim = chain
    sim.reject_recipients("+61499", 34)
    r = im.send("12345", "+61499000000", "doomed")
    done = wait_event(im, StatusChanged, lambda s: s.state == "processed" and s.seq == r.seq)
    assert not done.accepted and done.error_code == 34
    assert sim.accepted() == []


def test_mo_is_held_until_the_im_side_acknowledges(chain: Setup) -> None:
    im, _, sim = chain
    sim.inject_mo("+61400000001", "12345", "first")
    sim.inject_mo("+61400000001", "12345", "second")
    first = wait_event(im, MessageReceived)
    assert first.text == "first"
    second = wait_event(im, MessageReceived)
    assert second.text == "second"
    assert sim.counters()["mo_acked"] == 2, "the buffer server stored both"
    im.ack(first.link, first.seq)
    im.ack(second.link, second.seq)


def test_nothing_lost_or_doubled_across_wan_cuts() -> None:
    """IM endpoint -> WAN emulator -> SMSC-less buffer server, with cuts."""
    bs = BufferServer([link("bs", "im", listen="127.0.0.1:0", default=True)])
    bs_addr = bs.local_addr("bs")
    assert bs_addr is not None
    wan = Wan(bs_addr)
    im = Endpoint(
        [link("im", "bs", dial=wan.address, default=True)],
        reconnect_min=0.02,
        reconnect_max=0.1,
        status_events=["processed"],
    )
    try:
        n = 300
        got: List[str] = []
        processed = 0
        sent = 0
        cuts = 0
        deadline = time.monotonic() + 60
        while processed < n:
            assert time.monotonic() < deadline, f"stuck at {processed} of {n} processed"
            while sent < n:
                try:
                    im.send("1", "2", f"w{sent}")
                except smslink.RingFull:
                    break
                sent += 1
                if sent % 100 == 0:
                    wan.cut_all()
                    cuts += 1
            for ev in bs.poll_events():
                if isinstance(ev, MessageReceived):
                    got.append(ev.text or "")
                    bs.ack(ev.link, ev.seq)
            ev = im.next_event(timeout=0.05)
            if isinstance(ev, StatusChanged):
                assert ev.accepted
                processed += 1
            elif ev is None:
                assert im.link_stats("im").connects < 100, "reconnecting forever"
        # Late arrivals after the last processed status: none may exist.
        assert got == [f"w{i}" for i in range(n)], "in order, once each"
        assert cuts == 3 and wan.stats()["cuts"] >= 1
    finally:
        im.close(0)
        bs.close(0)
        wan.stop()

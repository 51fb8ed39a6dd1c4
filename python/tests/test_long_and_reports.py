"""Long messages both ways and delivery reports, through a real buffer server and
the SMSC simulator: a long MT is one `send` and a concatenated SMS at the SMSC, a
long MO one event, and the SMSC's report comes back with the sender's client_ref."""

from __future__ import annotations

from typing import Iterator, Tuple

import pytest

import smslink
from smslink import BufferServer, Endpoint, MessageReceived, Report, Smsc, StatusChanged
from smslink.testing import SmscSim

from conftest import WAIT, link, wait_event

Setup = Tuple[Endpoint, BufferServer, SmscSim]


@pytest.fixture
def chain() -> Iterator[Setup]:
    sim = SmscSim("gw", "pw")
    im = Endpoint([link("im", "bs", listen="127.0.0.1:0", default=True)])
    addr = im.local_addr("im")
    assert addr is not None
    bs = BufferServer(
        [link("bs", "im", dial=addr, default=True)],
        # Reports are asked for per SMSC (CIMD2 056), not per message.
        smsc=Smsc(sim.address, "gw", "pw", keepalive=0, status_report_request=14),
        reconnect_min=0.02,
        reconnect_max=0.2,
    )
    wait_event(bs, smslink.SmscUp)
    wait_event(im, smslink.LinkUp)
    yield im, bs, sim
    bs.close(0)
    im.close(0)
    sim.stop()


def test_sms_parts_counts_like_the_splitter() -> None:
    assert smslink.sms_parts("") == 1
    assert smslink.sms_parts("x" * 160) == 1
    assert smslink.sms_parts("x" * 161) == 2
    assert smslink.sms_parts("x" * 306) == 2
    assert smslink.sms_parts("x" * 307) == 3
    # A character GSM lacks makes it UCS-2: 70 alone, 67 a part.
    assert smslink.sms_parts("ĉ" * 70) == 1
    assert smslink.sms_parts("ĉ" * 71) == 2
    # An emoji is two UTF-16 units, never split across parts.
    assert smslink.sms_parts("😀" * 35) == 1
    assert smslink.sms_parts("😀" * 36) == 2
    # Beyond 255 parts: counted, and refused by send.
    assert smslink.sms_parts("x" * (255 * 153 + 1)) == 256


def test_long_mt_is_one_send_and_its_report_names_the_client_ref(chain: Setup) -> None:
    im, _, sim = chain
    text = ("ĉu vi? 10€ 😀 " * 40)[:500]
    parts = smslink.sms_parts(text)
    assert parts > 1
    r = im.send("12345", "+61400000001", text, client_ref=4242)
    done = wait_event(im, StatusChanged, lambda s: s.state == "processed" and s.seq == r.seq)
    assert done.accepted and done.client_ref == 4242
    report = wait_event(im, Report, lambda e: e.state != "enroute")
    assert (report.client_ref, report.state, report.parts) == (4242, "delivered", parts)
    at_smsc = [s.text for s in sim.accepted()]
    assert len(at_smsc) == parts and "".join(t or "" for t in at_smsc) == text


def test_too_long_a_text_is_refused_at_send(chain: Setup) -> None:
    im, _, sim = chain
    with pytest.raises(smslink.InvalidMessage):
        im.send("12345", "+61400000001", "x" * (255 * 153 + 1))
    assert sim.accepted() == []


def test_long_mo_arrives_as_one_message(chain: Setup) -> None:
    im, _, sim = chain
    text = " ".join(f"part{i}" for i in range(55))
    assert smslink.sms_parts(text) == 3
    sim.inject_mo("+61400000001", "12345", text)
    mo = wait_event(im, MessageReceived)
    assert (mo.text, mo.incomplete) == (text, False)
    im.ack(mo.link, mo.seq)
    assert sim.wait_for("mo_acked", 3, WAIT), sim.counters()


def test_reassembly_timeout_must_be_positive() -> None:
    with pytest.raises(smslink.ConfigError):
        Endpoint([link("im", "bs", listen="127.0.0.1:0")], reassembly_timeout=0)
    Endpoint([link("im", "bs", listen="127.0.0.1:0")], reassembly_timeout=30).close(0)

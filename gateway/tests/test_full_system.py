"""The whole chain with real parts: PC users' XMPP clients -> Prosody -> gateway
component -> IM-side smslink Endpoint -> WAN emulator (with cuts) -> buffer server
(Endpoint with an SMSC) -> SMSC simulator -> phones, and back."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import smslink
import smslink.testing

from smslink_gateway import Gateway, Store
from xmpp_harness import COMPONENT, DOMAIN, SECRET, PcUser, Prosody, wait_until

PSK = b"full-system-test-key"
GATEWAY_NUMBER = "12345"
PHONE = "+61400000001"
PHONE_JID = f"{PHONE}@{COMPONENT}"
BAD_PHONE = "+61499000000"  # the SMSC rejects this prefix
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


@dataclass
class SmsSide:
    sim: Any
    buffer: Any
    wan: Any
    im: Any

    def accepted_to(self, phone: str) -> list[str]:
        return [s.text for s in self.sim.accepted() if s.recipient == phone]


@pytest.fixture
def sms_side() -> Iterator[SmsSide]:
    sim = smslink.testing.SmscSim(user="smslink", password="secret")
    sim.reject_recipients("+614990", 300)
    buffer = smslink.Endpoint(
        [smslink.Link("au", PSK, listen="127.0.0.1:0")],
        smsc=smslink.Smsc(sim.address, "smslink", "secret"),
        reconnect_min=0.05,
        reconnect_max=0.5,
    )
    # The buffer server's application side only has to keep its event queue moving.
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            buffer.next_event(0.1)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    wan = smslink.testing.Wan(buffer.local_addr("au"), delay=0.01)
    im = smslink.Endpoint(
        [smslink.Link("au", PSK, dial=wan.address, prefixes=["+61"])],
        reconnect_min=0.05,
        reconnect_max=0.5,
    )
    try:
        yield SmsSide(sim, buffer, wan, im)
    finally:
        im.close()
        wan.stop()
        stop.set()
        drainer.join(5)
        buffer.close()
        sim.stop()


def show_of(p: Any) -> str:
    if p is None:
        return "none yet"
    return "unavailable" if p["type"] == "unavailable" else (p["show"] or "available")


def test_full_system(prosody: Prosody, sms_side: SmsSide, tmp_path: Path) -> None:
    s = sms_side

    async def main() -> None:
        store = Store(str(tmp_path / "gw.db"))
        gw = Gateway(
            COMPONENT,
            SECRET,
            "127.0.0.1",
            prosody.component_port,
            endpoint=s.im,
            store=store,
            sms_number=GATEWAY_NUMBER,
            retry_interval=0.05,
            reconnect_interval=0.1,
        )
        gw.start()
        alice = await PcUser("alice", prosody.c2s_port).online()
        bob = await PcUser("bob", prosody.c2s_port).online()
        try:
            await scenario(gw, alice, bob)
        finally:
            await alice.close()
            await bob.close()
            await gw.stop()
            store.close()

    async def scenario(gw: Gateway, alice: PcUser, bob: PcUser) -> None:
        # alice adds the phone; its presence follows the link.
        alice.send_presence(pto=PHONE_JID, ptype="subscribe")
        await wait_until(
            lambda: show_of(alice.last_presence_from(PHONE_JID)) == "available", 15, "link up"
        )

        # alice chats; the link is cut twice meanwhile. Every message reaches the
        # phone once, in order.
        expected = []
        for i in range(30):
            alice.chat(PHONE_JID, f"msg {i}")
            expected.append(f"alice: msg {i}")
            if i in (10, 20):
                s.wan.cut_all()
            await asyncio.sleep(0)  # let the stanza out between cuts
        await wait_until(lambda: s.accepted_to(PHONE) == expected, 30, "30 SMS at the phone")

        # A cut shows: the phone contact goes away, and comes back.
        s.wan.set_outage("refuse")
        await wait_until(lambda: show_of(alice.last_presence_from(PHONE_JID)) == "away", 15, "away")
        # Sent while the link is down: waits in the ring, not dropped.
        alice.chat(PHONE_JID, "while down")
        await wait_until(lambda: gw.store.outbox_count() == 1, 10, "queued")
        s.wan.set_outage("none")
        await wait_until(
            lambda: show_of(alice.last_presence_from(PHONE_JID)) == "available", 15, "back"
        )
        await wait_until(
            lambda: s.accepted_to(PHONE) == expected + ["alice: while down"], 15, "delivered"
        )

        # The phone answers: plain text goes to alice, who wrote last.
        s.sim.inject_mo(PHONE, GATEWAY_NUMBER, "hi alice")
        await wait_until(lambda: alice.bodies_from(PHONE_JID) == ["hi alice"], 15, "reply")

        # SMS commands. ADD: alice and bob get subscription requests from the phone.
        s.sim.inject_mo(PHONE, GATEWAY_NUMBER, "ADD alice")
        s.sim.inject_mo(PHONE, GATEWAY_NUMBER, "ADD bob")
        await wait_until(
            lambda: gw.buddy_show(PHONE, ALICE) is not None and gw.buddy_show(PHONE, BOB) is not None,
            15,
            "buddies' presence",
        )
        await wait_until(lambda: len(s.accepted_to(PHONE)) == 33, 15, "ADD answers")
        await bob.close()
        await wait_until(lambda: gw.buddy_show(PHONE, BOB) is None, 10, "bob offline")
        s.sim.inject_mo(PHONE, GATEWAY_NUMBER, "WHO")
        await wait_until(lambda: len(s.accepted_to(PHONE)) == 34, 15, "WHO answer")
        assert s.accepted_to(PHONE)[-1] == "Online: alice. Offline: bob"

        # MSG a buddy by name, across another cut.
        s.wan.cut_all()
        s.sim.inject_mo(PHONE, GATEWAY_NUMBER, "MSG alice lunch?")
        await wait_until(
            lambda: alice.bodies_from(PHONE_JID) == ["hi alice", "lunch?"], 15, "MSG alice"
        )

        # The SMSC refuses a number: alice gets an XMPP error with the reason.
        mid = alice.chat(f"{BAD_PHONE}@{COMPONENT}", "to nowhere")
        await wait_until(lambda: alice.errors, 15, "error stanza")
        err = alice.errors[0]
        assert err["id"] == mid and err["from"].bare == f"{BAD_PHONE}@{COMPONENT}"
        assert "error 300" in err["error"]["text"]

        # Nothing lost or doubled on either side; every MO acknowledged and handled.
        assert s.accepted_to(PHONE)[:31] == expected + ["alice: while down"]
        assert alice.bodies_from(PHONE_JID) == ["hi alice", "lunch?"]
        await wait_until(lambda: gw.store.outbox_count() == 0, 10, "outbox empty")
        assert gw.store.inbox() == []

    asyncio.run(main())

"""The whole chain with real parts: PC users' XMPP clients -> Prosody -> gateway
component -> IM-side smslink Endpoint -> WAN emulator (with cuts) -> buffer server
(Endpoint with an SMSC) -> SMSC simulator -> phones, and back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
import smslink
import smslink.testing

from smslink_gateway import Gateway, Store
from xmpp_harness import (
    COMPONENT,
    DOMAIN,
    SECRET,
    PcUser,
    Prosody,
    free_port,
    scrape,
    show_of,
    wait_until,
)

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
    capacity: int = 255
    im: Any = None
    # The IM side's TLS settings (its key, the buffer server's fingerprint).
    im_tls: dict[str, str] = field(default_factory=dict)

    def make_im(self) -> Any:
        """The IM-side endpoint (the gateway's communication buffer)."""
        self.im = smslink.Endpoint(
            [
                smslink.Link(
                    "au",
                    PSK,
                    dial=self.wan.address,
                    prefixes=["+61"],
                    capacity=self.capacity,
                    **self.im_tls,  # type: ignore[arg-type]
                )
            ],
            reconnect_min=0.05,
            reconnect_max=0.5,
        )
        return self.im

    def accepted_to(self, phone: str) -> list[str]:
        return [s.text for s in self.sim.accepted() if s.recipient == phone]


@pytest.fixture(params=[{}])
def sms_side(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmsSide]:
    """SMSC simulator, buffer server and the WAN emulator in front of it; the test
    makes the IM-side endpoint with `make_im`. The link runs TLS, each side pinning
    the other's key. Param: {"capacity": ring slots, "wan": more Wan options}."""
    keys = str(tmp_path_factory.mktemp("keys"))
    bs_cert, bs_key, bs_fp = smslink.testing.make_site_identity("au-bs", keys)
    im_cert, im_key, im_fp = smslink.testing.make_site_identity("au-im", keys)
    capacity = request.param.get("capacity", 255)
    sim = smslink.testing.SmscSim(user="smslink", password="secret")
    sim.reject_recipients("+614990", 300)
    buffer = smslink.Endpoint(
        [
            smslink.Link(
                "au",
                PSK,
                listen="127.0.0.1:0",
                capacity=capacity,
                tls_cert=bs_cert,
                tls_key=bs_key,
                tls_peer_fingerprint=im_fp,
            )
        ],
        # 14: delivery reports on delivered, failed and buffered messages.
        smsc=smslink.Smsc(sim.address, "smslink", "secret", status_report_request=14),
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
    # A slow, jittery internet between the IM server and the buffer server.
    wan = smslink.testing.Wan(
        buffer.local_addr("au"), delay=0.05, jitter=0.02, seed=7, **request.param.get("wan", {})
    )
    side = SmsSide(
        sim,
        buffer,
        wan,
        capacity,
        im_tls={"tls_cert": im_cert, "tls_key": im_key, "tls_peer_fingerprint": bs_fp},
    )
    try:
        yield side
    finally:
        if side.im is not None:
            side.im.close()
        wan.stop()
        stop.set()
        drainer.join(5)
        buffer.close()
        sim.stop()


@contextlib.asynccontextmanager
async def gateway_online(
    prosody: Prosody, s: SmsSide, tmp_path: Path, users: tuple[str, ...], **options: Any
) -> AsyncIterator[tuple[Gateway, list[PcUser]]]:
    """The gateway on the real endpoint, connected to Prosody, with these PC users
    online; everything is closed again afterwards, whatever happened."""
    store = Store(str(tmp_path / "gw.db"))
    gw = Gateway(
        COMPONENT,
        SECRET,
        "127.0.0.1",
        prosody.component_port,
        endpoint=s.make_im(),
        store=store,
        sms_number=GATEWAY_NUMBER,
        **options,
    )
    gw.start()
    clients: list[PcUser] = []
    try:
        await wait_until(lambda: gw.online, 10, "component connected")
        for user in users:
            clients.append(await PcUser(user, prosody.c2s_port).online())
        yield gw, clients
    finally:
        for client in clients:
            await client.close()
        await gw.stop()
        store.close()


def test_full_system(prosody: Prosody, sms_side: SmsSide, tmp_path: Path) -> None:
    s = sms_side

    async def main() -> None:
        async with gateway_online(
            prosody,
            s,
            tmp_path,
            ("alice", "bob"),
            retry_interval=0.05,
            reconnect_interval=0.1,
            down_grace=0.2,
        ) as (gw, (alice, bob)):
            await scenario(gw, alice, bob)

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
        # ... and each one's final status came back to the gateway.
        await wait_until(lambda: gw.store.outbox_count() == 0, 15, "all statuses back")

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

        # A burst of SMS from the phone with a cut in the middle: each arrives once,
        # in order.
        burst = [f"n{i}" for i in range(20)]
        for i, text in enumerate(burst):
            s.sim.inject_mo(PHONE, GATEWAY_NUMBER, f"@alice {text}")
            if i == 9:
                s.wan.cut_all()
        await wait_until(
            lambda: alice.bodies_from(PHONE_JID) == ["hi alice", "lunch?"] + burst, 20, "burst"
        )

        # The SMSC refuses a number: alice gets an XMPP error with the reason.
        mid = alice.chat(f"{BAD_PHONE}@{COMPONENT}", "to nowhere")
        await wait_until(lambda: alice.errors, 15, "error stanza")
        err = alice.errors[0]
        assert err["id"] == mid and err["from"].bare == f"{BAD_PHONE}@{COMPONENT}"
        assert "error 300" in err["error"]["text"]

        # A number no link serves: refused at once, also as an XMPP error.
        alice.chat(f"+15550000000@{COMPONENT}", "to America")
        await wait_until(lambda: len(alice.errors) == 2, 15, "no-route error")
        assert alice.errors[1]["error"]["condition"] == "item-not-found"
        assert alice.errors[1]["error"]["text"] == (
            "cannot send the SMS: no SMS link serves +15550000000"
        )

        # A 500-character chat with characters GSM lacks goes as ONE concatenated SMS
        # (UCS-2, 67 units a part); the SMSC's delivery report becomes alice's receipt.
        long_body = ("ĉu vi? 10€ 😀 " * 40)[:500]
        text = "alice: " + long_body
        parts = smslink.sms_parts(text)
        assert parts == 9
        before = len(s.accepted_to(PHONE))
        mid = alice.chat(PHONE_JID, long_body, receipt=True)
        await wait_until(lambda: mid in alice.receipts, 15, "receipt for the long chat")
        tail = s.accepted_to(PHONE)[before:]
        assert len(tail) == parts and "".join(tail) == text
        await wait_until(lambda: gw.store.awaiting_report_count() == 0, 10, "reports all in")

        # A phone's 3-part SMS arrives as one chat message.
        long_mo = " ".join(f"part{i}" for i in range(55))
        assert smslink.sms_parts(long_mo) == 3
        s.sim.inject_mo(PHONE, GATEWAY_NUMBER, long_mo)
        await wait_until(
            lambda: alice.bodies_from(PHONE_JID)[-1:] == [long_mo], 15, "the long SMS in one chat"
        )

        # Nothing lost or doubled on either side; every MO acknowledged and handled.
        assert s.accepted_to(PHONE)[:31] == expected + ["alice: while down"]
        assert alice.bodies_from(PHONE_JID) == ["hi alice", "lunch?"] + burst + [long_mo]
        assert s.wan.stats()["cuts"] >= 4, s.wan.stats()
        await wait_until(lambda: gw.store.outbox_count() == 0, 10, "outbox empty")
        assert gw.store.inbox() == []

    asyncio.run(main())


def test_operator_command(prosody: Prosody, sms_side: SmsSide, tmp_path: Path) -> None:
    """The README's one command, as a process, with its metrics port: chat both
    ways, then SIGTERM."""
    s = sms_side
    psk_file = tmp_path / "au.psk"
    psk_file.write_bytes(PSK + b"\n")
    metrics_port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smslink_gateway",
            "--jid", COMPONENT,
            "--server", "127.0.0.1",
            "--port", str(prosody.component_port),
            "--sms-number", GATEWAY_NUMBER,
            "--db", str(tmp_path / "state.db"),
            "--link",
            f"name=au,dial={s.wan.address},psk-file={psk_file},prefixes=+61,"
            + ",".join(f"{k.replace('_', '-')}={v}" for k, v in s.im_tls.items()),
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
            *(["-v"] if os.environ.get("GW_DEBUG") else []),
        ],
        env={**os.environ, "SMSLINK_GATEWAY_SECRET": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=None if os.environ.get("GW_DEBUG") else subprocess.PIPE,
    )

    async def main() -> None:
        alice = await PcUser("alice", prosody.c2s_port).online()
        try:
            await alice.until_component_answers(COMPONENT)
            alice.send_presence(pto=PHONE_JID, ptype="subscribe")
            await wait_until(
                lambda: show_of(alice.last_presence_from(PHONE_JID)) == "available", 20, "up"
            )
            alice.chat(PHONE_JID, "from the command line")
            await wait_until(
                lambda: s.accepted_to(PHONE) == ["alice: from the command line"], 15, "MT"
            )
            s.sim.inject_mo(PHONE, GATEWAY_NUMBER, "got it")
            await wait_until(lambda: alice.bodies_from(PHONE_JID) == ["got it"], 15, "MO")
            m = scrape(metrics_port)
            assert m['smslink_link_up{link="au"}'] == 1
            assert m["smslink_gateway_xmpp_connected"] == 1
            assert m["smslink_gateway_chats_total"] == 1
            assert m['smslink_gateway_sms_out_total{link="au"}'] == 1
            assert m['smslink_gateway_sms_in_total{link="au"}'] == 1
            proc.send_signal(signal.SIGTERM)
            # On the way out the gateway says the phone went offline.
            await wait_until(
                lambda: show_of(alice.last_presence_from(PHONE_JID)) == "unavailable", 15, "bye"
            )
        finally:
            await alice.close()

    try:
        asyncio.run(main())
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in err, err


@pytest.mark.parametrize("sms_side", [{"capacity": 4}], indirect=True)
def test_full_ring_holds_messages_back_in_order(
    prosody: Prosody, sms_side: SmsSide, tmp_path: Path
) -> None:
    """Rings of 4 slots and a stalled WAN: the real endpoint says RingFull; the
    gateway keeps the rest and sends them as slots free, none lost, none doubled."""
    s = sms_side

    async def main() -> None:
        async with gateway_online(
            prosody, s, tmp_path, ("alice",), retry_interval=0.05
        ) as (gw, (alice,)):
            await wait_until(lambda: gw.link_up.get("au"), 15, "link up")
            s.wan.stall(True)
            expected = [f"alice: m{i}" for i in range(12)]
            for i in range(12):
                alice.chat(PHONE_JID, f"m{i}")
            await wait_until(lambda: gw.store.outbox_count() == 12, 10, "all twelve stored")
            # Four went into the ring; the other eight wait for room.
            await wait_until(lambda: len(gw.store.outbox_queued()) == 8, 10, "eight held back")
            assert s.accepted_to(PHONE) == []
            s.wan.stall(False)
            await wait_until(lambda: s.accepted_to(PHONE) == expected, 20, "all twelve, in order")
            await wait_until(lambda: gw.store.outbox_count() == 0, 10, "outbox drained")
            assert alice.errors == []

    asyncio.run(main())


@pytest.mark.parametrize("sms_side", [{"wan": {"cut_every": (0.2, 0.6)}}], indirect=True)
def test_two_users_two_phones_under_random_cuts(
    prosody: Prosody, sms_side: SmsSide, tmp_path: Path
) -> None:
    """The WAN cuts the link every 0.2-0.6 s while alice and bob each chat with a
    phone and both phones answer: every message arrives exactly once, in order."""
    s = sms_side
    phone2 = "+61400000002"
    phone2_jid = f"{phone2}@{COMPONENT}"
    n = 60

    async def main() -> None:
        async with gateway_online(
            prosody, s, tmp_path, ("alice", "bob"), retry_interval=0.05, down_grace=0.2
        ) as (gw, (alice, bob)):
            bob.chat(phone2_jid, "hello 2")  # so that phone 2's plain replies go to bob
            await wait_until(lambda: s.accepted_to(phone2) == ["bob: hello 2"], 20, "first")
            for i in range(n):
                alice.chat(PHONE_JID, f"a{i}")
                bob.chat(phone2_jid, f"b{i}")
                s.sim.inject_mo(PHONE, GATEWAY_NUMBER, f"@alice p{i}")
                s.sim.inject_mo(phone2, GATEWAY_NUMBER, f"q{i}")
                if i % 20 == 19:
                    # Traffic on both sides of a cut, whatever the machine's speed.
                    cuts = s.wan.stats()["cuts"]
                    await wait_until(lambda: s.wan.stats()["cuts"] > cuts, 5, "a cut")
            await wait_until(
                lambda: s.accepted_to(PHONE) == [f"alice: a{i}" for i in range(n)]
                and s.accepted_to(phone2) == ["bob: hello 2"] + [f"bob: b{i}" for i in range(n)],
                60,
                "every chat at its phone once, in order",
            )
            await wait_until(
                lambda: alice.bodies_from(PHONE_JID) == [f"p{i}" for i in range(n)]
                and bob.bodies_from(phone2_jid) == [f"q{i}" for i in range(n)],
                60,
                "every SMS at its user once, in order",
            )
            assert s.wan.stats()["cuts"] >= 3, s.wan.stats()
            await wait_until(lambda: gw.store.outbox_count() == 0, 20, "all statuses back")
            assert gw.store.inbox() == [] and alice.errors == [] and bob.errors == []

    asyncio.run(main())

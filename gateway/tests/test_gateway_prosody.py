"""The component against a real Prosody and real XMPP clients, with a fake
communication buffer standing in for smslink (the full system is in
test_full_system.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from slixmpp.exceptions import IqError

from smslink_gateway import Gateway, Route, SmsStatus, Store, commands
from xmpp_harness import (
    COMPONENT,
    DOMAIN,
    SECRET,
    FakeEndpoint,
    PcUser,
    Prosody,
    scrape,
    show_of,
    wait_until,
)

PHONE = "+61400000001"
PHONE_JID = f"{PHONE}@{COMPONENT}"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def run(
    prosody: Prosody,
    tmp_path: Path,
    body: Callable[[Gateway, FakeEndpoint, PcUser, PcUser], Awaitable[None]],
    capacity: int = 255,
    prepare: Callable[[Store], None] = lambda store: None,
) -> None:
    async def main() -> None:
        fake = FakeEndpoint(capacity=capacity)
        store = Store(str(tmp_path / "gw.db"))
        prepare(store)
        gw = Gateway(
            COMPONENT,
            SECRET,
            "127.0.0.1",
            prosody.component_port,
            endpoint=fake,
            store=store,
            sms_number="12345",
            routes=[Route("au", ["+61"])],
            retry_interval=0.05,
            reconnect_interval=0.1,
            down_grace=0.2,
        )
        gw.start()
        alice = bob = None
        try:
            await wait_until(lambda: gw.online, 10, "component connected")
            alice = await PcUser("alice", prosody.c2s_port).online()
            bob = await PcUser("bob", prosody.c2s_port).online()
            await asyncio.wait_for(body(gw, fake, alice, bob), 60)
        finally:
            for c in (alice, bob):
                if c is not None:
                    await c.close()
            await gw.stop()
            gw.metrics.close()
            store.close()

    asyncio.run(main())




def test_phone_contact_presence_follows_link(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        alice.send_presence(pto=PHONE_JID, ptype="subscribe")
        # Link not up yet: the contact shows away, with the reason.
        await wait_until(lambda: alice.last_presence_from(PHONE_JID), what="phone presence")
        p = alice.last_presence_from(PHONE_JID)
        assert show_of(p) == "away" and "down" in p["status"]
        # The server stored the subscription in alice's roster.
        await wait_until(
            lambda: alice.client_roster[PHONE_JID]["subscription"] in ("to", "both"),
            what="roster subscription",
        )
        fake.up()
        await wait_until(
            lambda: show_of(alice.last_presence_from(PHONE_JID)) == "available", what="up"
        )
        # A cut healed at once shows nothing; one that lasts shows away.
        fake.down()
        fake.up()
        fake.down()
        await wait_until(lambda: show_of(alice.last_presence_from(PHONE_JID)) == "away", what="down")
        shown = [show_of(p) for p in alice.presences if p["from"].bare == PHONE_JID]
        assert shown == ["subscribed", "away", "available", "away"], shown
        # bob never subscribed: he hears nothing from the phone.
        assert bob.last_presence_from(PHONE_JID) is None

    run(prosody, tmp_path, body)


def test_chat_to_phone_and_reply(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.up()
        mid = alice.chat(PHONE_JID, "hello phone", receipt=True)
        await wait_until(lambda: fake.texts_to(PHONE), what="SMS handed to the buffer")
        assert fake.sent[0][2:5] == ("12345", PHONE, "alice: hello phone")
        fake.finish(fake.sent[0][1])
        # The SMSC accepted it; the receipt waits for the phone to have it.
        await wait_until(lambda: gw.store.awaiting_report_count() == 1, what="awaiting report")
        assert mid not in alice.receipts
        fake.report(fake.sent[0][5], "enroute")
        fake.report(fake.sent[0][5], "delivered")
        await wait_until(lambda: mid in alice.receipts, what="delivery receipt")
        assert gw.store.awaiting_report_count() == 0
        # The phone answers with plain text: it goes to whoever wrote last.
        seq = fake.mo(PHONE, "hi alice")
        await wait_until(lambda: alice.bodies_from(PHONE_JID) == ["hi alice"], what="reply")
        assert ("au", seq) in fake.acked
        assert gw.store.inbox() == []
        assert bob.bodies_from(PHONE_JID) == []

    run(prosody, tmp_path, body)


def test_long_chat_is_one_sms_and_long_mo_one_chat(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.up()
        long_body = " ".join(f"word{i}" for i in range(80))
        alice.chat(PHONE_JID, long_body)
        await wait_until(lambda: fake.sent, what="sent")
        # One message, however long: the buffer server concatenates.
        assert fake.texts_to(PHONE) == ["alice: " + long_body]
        # A long MO comes whole; one with a part missing says so.
        fake.mo(PHONE, "x" * 400)
        fake.mo(PHONE, "half a story", incomplete=True)
        await wait_until(lambda: len(alice.bodies_from(PHONE_JID)) == 2, what="both chats")
        assert alice.bodies_from(PHONE_JID) == ["x" * 400, "half a story [part missing]"]

    run(prosody, tmp_path, body)


def test_failed_report_is_an_xmpp_error(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.up()
        mid = alice.chat(PHONE_JID, "never arrives", receipt=True)
        await wait_until(lambda: fake.sent, what="sent")
        fake.finish(fake.sent[0][1])
        await wait_until(lambda: gw.store.awaiting_report_count() == 1, what="awaiting report")
        fake.report(fake.sent[0][5], "expired")
        await wait_until(lambda: alice.errors, what="error stanza")
        err = alice.errors[0]
        assert err["id"] == mid and err["from"].bare == PHONE_JID
        assert err["error"]["condition"] == "recipient-unavailable"
        assert "expired" in err["error"]["text"]
        assert mid not in alice.receipts
        # A report nobody waits for (a command's answer, a forgotten ref) is ignored.
        fake.report(9999, "delivered")
        assert gw.store.awaiting_report_count() == 0
        # A report that overtakes the SMSC's acceptance still reaches the chat, and
        # the late status finds nothing left to do.
        mid2 = alice.chat(PHONE_JID, "quick phone", receipt=True)
        await wait_until(lambda: len(fake.sent) == 2, what="second sent")
        fake.report(fake.sent[1][5], "delivered")
        await wait_until(lambda: mid2 in alice.receipts, what="receipt before the status")
        assert gw.store.outbox_count() == 0
        fake.finish(fake.sent[1][1])
        # Events are handled in order: once this MO is through, so is the status.
        fake.mo(PHONE, "after")
        await wait_until(lambda: alice.bodies_from(PHONE_JID) == ["after"], what="MO after")
        assert gw.store.awaiting_report_count() == 0 and len(alice.errors) == 1

    run(prosody, tmp_path, body)


def test_receipt_for_a_chat_of_a_previous_run(prosody: Prosody, tmp_path: Path) -> None:
    refs: list[int] = []

    def previous_run(store: Store) -> None:
        ref = store.outbox_put("12345", PHONE, "alice: before", f"{ALICE}/pc", "m1", True)
        item = store.outbox_get(ref)
        assert item is not None
        store.outbox_done(ref)
        store.await_report(item)
        refs.append(ref)

    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.report(refs[0], "delivered")
        await wait_until(lambda: "m1" in alice.receipts, what="receipt after a restart")
        assert gw.store.awaiting_report_count() == 0

    run(prosody, tmp_path, body, prepare=previous_run)


def test_plain_sms_without_peer_gets_help(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.mo("+61400000002", "anyone there?")
        await wait_until(lambda: fake.texts_to("+61400000002"), what="help SMS")
        assert fake.texts_to("+61400000002")[0].startswith("Commands: WHO")
        assert commands.fits_one_sms(fake.texts_to("+61400000002")[0])

    run(prosody, tmp_path, body)


def test_sms_commands_add_who_msg(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        def sms() -> list[str]:
            return fake.texts_to(PHONE)

        fake.mo(PHONE, "ADD alice")
        await wait_until(lambda: ALICE and PHONE_JID in alice.subscribe_requests, what="subscribe")
        # alice's client approves (slixmpp's default); her presence reaches the phone user.
        await wait_until(lambda: gw.buddy_show(PHONE, ALICE) is not None, what="alice's presence")
        fake.mo(PHONE, "add bob")
        await wait_until(lambda: gw.buddy_show(PHONE, BOB) is not None, what="bob's presence")
        # carol is offline: her approval is pending.
        fake.mo(PHONE, "ADD carol")
        await wait_until(lambda: len(sms()) == 3, what="three ADD answers")
        assert sms()[0].startswith("Added alice")
        # bob goes offline; WHO answers from real presence.
        await bob.close()
        await wait_until(lambda: gw.buddy_show(PHONE, BOB) is None, what="bob offline")
        fake.mo(PHONE, "who")
        await wait_until(lambda: len(sms()) == 4, what="WHO answer")
        assert sms()[3] == "Online: alice. Offline: bob, carol (pending)"
        # MSG by name: a chat from the phone's JID.
        fake.mo(PHONE, "MSG alice lunch at 1?")
        await wait_until(lambda: alice.bodies_from(PHONE_JID) == ["lunch at 1?"], what="MSG")
        # Now a plain SMS replies to alice, the last one talked to.
        fake.mo(PHONE, "ok?")
        await wait_until(lambda: alice.bodies_from(PHONE_JID)[-1:] == ["ok?"], what="plain")
        # The buddy list survives in SQLite.
        assert [(b.name, b.subscribed) for b in gw.store.buddies(PHONE)] == [
            ("alice", True),
            ("bob", True),
            ("carol", False),
        ]
        fake.mo(PHONE, "DEL bob")
        await wait_until(lambda: len(sms()) == 5, what="DEL answer")
        assert [b.name for b in gw.store.buddies(PHONE)] == ["alice", "carol"]
        fake.mo(PHONE, "MSG alice")
        await wait_until(lambda: len(sms()) == 6, what="usage")
        assert sms()[5] == "Usage: MSG name text"
        assert len(fake.acked) == 8 and gw.store.inbox() == []

    run(prosody, tmp_path, body)


def test_failed_msg_is_explained_and_keeps_the_reply_target(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        def sms() -> list[str]:
            return fake.texts_to(PHONE)

        fake.mo(PHONE, "MSG alice hello")
        await wait_until(lambda: alice.bodies_from(PHONE_JID) == ["hello"], what="MSG alice")
        # nobody is not a user of the server: the phone is told so in words (the
        # server answers service-unavailable), and a plain reply still goes to alice.
        fake.mo(PHONE, "MSG nobody hi")
        await wait_until(lambda: len(sms()) == 1, what="undelivered SMS")
        assert sms()[0] == "Not delivered: nobody is not a user here."
        fake.mo(PHONE, "still there?")
        await wait_until(lambda: alice.bodies_from(PHONE_JID)[-1:] == ["still there?"], what="plain")
        assert gw.store.last_peer(PHONE) == ALICE
        # bob approved the phone as a buddy and went offline: his server keeps the
        # chat for him, and the phone hears that it waits.
        fake.mo(PHONE, "ADD bob")
        await wait_until(lambda: gw.buddy_show(PHONE, BOB) is not None, what="bob's presence")
        await bob.close()
        await wait_until(lambda: gw.buddy_show(PHONE, BOB) is None, what="bob offline")
        fake.mo(PHONE, "MSG bob see you")
        await wait_until(lambda: len(sms()) == 3, what="offline notice")
        assert sms()[2] == "bob is offline; the message waits."
        assert gw.store.last_peer(PHONE) == BOB

    run(prosody, tmp_path, body)


def test_rejected_sms_is_an_xmpp_error(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.up()
        mid = alice.chat(PHONE_JID, "to a bad number")
        await wait_until(lambda: fake.sent, what="sent")
        fake.finish(fake.sent[0][1], error_code=300)
        await wait_until(lambda: alice.errors, what="error stanza")
        err = alice.errors[0]
        assert err["id"] == mid
        assert err["from"].bare == PHONE_JID
        assert err["error"]["condition"] == "not-acceptable"
        assert "error 300" in err["error"]["text"]
        assert "destination" in err["error"]["text"]
        assert gw.store.outbox_count() == 0

    run(prosody, tmp_path, body)


def test_bad_contact_and_component_itself(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        alice.chat(f"notanumber@{COMPONENT}", "x")
        await wait_until(lambda: alice.errors, what="jid-malformed")
        assert alice.errors[0]["error"]["condition"] == "jid-malformed"
        alice.chat(COMPONENT, "help?")
        await wait_until(lambda: alice.bodies_from(COMPONENT), what="hint")
        assert fake.sent == []
        # Added as a contact, the gateway itself shows online.
        alice.send_presence(pto=COMPONENT, ptype="subscribe")
        await wait_until(
            lambda: show_of(alice.last_presence_from(COMPONENT)) == "available", what="gateway"
        )
        # Clients discover the component as an SMS gateway.
        info = await alice.plugin["xep_0030"].get_info(jid=COMPONENT, timeout=10)
        identities = info["disco_info"]["identities"]
        assert any(i[0] == "gateway" and i[1] == "sms" for i in identities), identities
        assert "jabber:iq:gateway" in info["disco_info"]["features"]
        # The client's "add contact via gateway" turns a typed number into the JID.
        ask = alice.make_iq_get(ito=COMPONENT)
        ask.enable("gateway")
        prompt = await ask.send(timeout=10)
        assert prompt["gateway"]["prompt"] == "Phone number"
        typed = alice.make_iq_set(ito=COMPONENT)
        typed["gateway"]["prompt"] = "+61 400 000 001"
        answer = await typed.send(timeout=10)
        assert answer["gateway"]["jid"] == PHONE_JID
        wrong = alice.make_iq_set(ito=COMPONENT)
        wrong["gateway"]["prompt"] = "call me"
        with pytest.raises(IqError) as refused:
            await wrong.send(timeout=10)
        assert refused.value.iq["error"]["condition"] == "not-acceptable"

    run(prosody, tmp_path, body)


def test_ring_full_queues_in_order(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        for i in range(5):
            alice.chat(PHONE_JID, f"m{i}")
        await wait_until(lambda: gw.store.outbox_count() == 5, what="all five stored")
        assert len(fake.sent) == 2  # the ring holds two; the rest wait, not dropped
        # Each processed slot lets the next message in, in order.
        while len(fake.sent) < 5 or fake.in_ring:
            seq = min(fake.in_ring)
            n = len(fake.sent)
            fake.finish(seq)
            await wait_until(
                lambda: len(fake.sent) == min(5, n + 1) or not fake.in_ring, what="next in"
            )
        assert fake.texts_to(PHONE) == [f"alice: m{i}" for i in range(5)]
        await wait_until(lambda: gw.store.outbox_count() == 0, what="outbox drained")
        assert alice.errors == []

    run(prosody, tmp_path, body, capacity=2)


def test_ack_retried_when_endpoint_busy(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.busy_acks = 2
        seq = fake.mo(PHONE, "MSG bob hi")
        await wait_until(lambda: bob.bodies_from(PHONE_JID) == ["hi"], what="delivered")
        await wait_until(lambda: fake.acked == [("au", seq)], what="acked once, after retries")

    run(prosody, tmp_path, body)


def test_sms_while_xmpp_server_down_waits_in_inbox(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        fake.up()
        alice.send_presence(pto=PHONE_JID, ptype="subscribe")
        await wait_until(
            lambda: show_of(alice.last_presence_from(PHONE_JID)) == "available", what="up"
        )
        await asyncio.get_running_loop().run_in_executor(None, prosody.stop)
        await wait_until(lambda: not gw.online, what="component sees the server gone")
        fake.mo(PHONE, "MSG alice sent while the server was down")
        # Stored, then acknowledged to the buffer; handled once the server is back.
        await wait_until(lambda: len(fake.acked) == 1, what="ack")
        assert [i.text for i in gw.store.inbox()] == ["MSG alice sent while the server was down"]
        await asyncio.get_running_loop().run_in_executor(None, prosody.start)
        await wait_until(lambda: gw.online, 15, what="component reconnected")
        await wait_until(lambda: gw.store.inbox() == [], what="inbox handled")
        # alice was offline meanwhile: the server kept the chat for her (mod_offline).
        alice2 = await PcUser("alice", prosody.c2s_port).online()
        try:
            await wait_until(
                lambda: alice2.bodies_from(PHONE_JID) == ["sent while the server was down"],
                what="offline message",
            )
            # Her subscription survived too; the component answers the server's probe.
            await wait_until(
                lambda: show_of(alice2.last_presence_from(PHONE_JID)) == "available",
                what="presence after restart",
            )
        finally:
            await alice2.close()

    run(prosody, tmp_path, body)


def test_unfinished_sms_of_a_previous_run_are_sent_again(prosody: Prosody, tmp_path: Path) -> None:
    def previous_run(store: Store) -> None:
        ref = store.outbox_put("12345", PHONE, "alice: in flight", f"{ALICE}/pc", "m1")
        store.outbox_sent(ref, "au", 41)
        store.outbox_put("12345", PHONE, "alice: still queued", f"{ALICE}/pc", "m2")

    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        await wait_until(lambda: len(fake.sent) == 2, what="both handed to the new endpoint")
        assert fake.texts_to(PHONE) == ["alice: in flight", "alice: still queued"]
        # A late status for the old ring's slot matches nothing now.
        fake.queue.put_nowait(SmsStatus("au", 41, 1, "processed", 300, False))
        for seq in list(fake.in_ring):
            fake.finish(seq)
        await wait_until(lambda: gw.store.outbox_count() == 0, what="finished")
        assert alice.errors == []

    run(prosody, tmp_path, body, prepare=previous_run)


def test_metrics_count_the_traffic(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        port = gw.metrics.serve("127.0.0.1", 0)

        async def metrics() -> dict[str, float]:
            return await asyncio.get_running_loop().run_in_executor(None, scrape, port)

        m = await metrics()
        # Known from the routes before any event: down, and every error kind at 0.
        assert m['smslink_link_up{link="au"}'] == 0
        assert m["smslink_gateway_xmpp_connected"] == 1
        assert m['smslink_gateway_errors_total{kind="smsc_rejected"}'] == 0
        fake.up()
        alice.chat(PHONE_JID, "accepted")
        alice.chat(PHONE_JID, "rejected")
        alice.chat(f"notanumber@{COMPONENT}", "x")
        await wait_until(lambda: len(fake.sent) == 2, what="two SMS handed over")
        fake.finish(fake.sent[0][1])
        fake.finish(fake.sent[1][1], error_code=300)
        await wait_until(lambda: len(alice.errors) == 2, what="two errors back")
        fake.mo(PHONE, "ADD alice")
        await wait_until(lambda: gw.buddy_show(PHONE, ALICE) is not None, what="alice's presence")
        await wait_until(lambda: len(fake.sent) == 3, what="the ADD answer")
        m = await metrics()
        assert m['smslink_link_up{link="au"}'] == 1
        assert m["smslink_gateway_chats_total"] == 2
        assert m['smslink_gateway_sms_out_total{link="au"}'] == 3
        assert m['smslink_gateway_sms_in_total{link="au"}'] == 1
        assert m["smslink_gateway_users_online"] == 1
        assert m['smslink_gateway_errors_total{kind="smsc_rejected"}'] == 1
        assert m['smslink_gateway_errors_total{kind="bad_contact"}'] == 1
        assert m['smslink_gateway_errors_total{kind="send_refused"}'] == 0
        assert m["smslink_gateway_outbox_waiting"] == 0
        # alice leaves; the link goes down.
        await alice.close()
        await wait_until(lambda: gw.buddy_show(PHONE, ALICE) is None, what="alice offline")
        fake.down()
        await wait_until(lambda: gw.link_up.get("au") is False, what="link down")
        m = await metrics()
        assert m['smslink_link_up{link="au"}'] == 0
        assert m["smslink_gateway_users_online"] == 0

    run(prosody, tmp_path, body)


def test_metrics_show_sms_held_back_by_a_full_ring(prosody: Prosody, tmp_path: Path) -> None:
    async def body(gw: Gateway, fake: FakeEndpoint, alice: PcUser, bob: PcUser) -> None:
        port = gw.metrics.serve("127.0.0.1", 0)
        for i in range(5):
            alice.chat(PHONE_JID, f"m{i}")
        await wait_until(lambda: gw.store.outbox_count() == 5, what="all five stored")
        await wait_until(
            lambda: scrape(port)["smslink_gateway_outbox_waiting"] == 3, what="three held back"
        )
        for seq in sorted(fake.in_ring):
            fake.finish(seq)
        await wait_until(lambda: len(fake.sent) == 4, what="two more in")
        assert scrape(port)["smslink_gateway_outbox_waiting"] == 1

    run(prosody, tmp_path, body, capacity=2)

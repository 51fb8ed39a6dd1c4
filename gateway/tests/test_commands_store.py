"""SMS command parsing and the SQLite store, without any server."""

from __future__ import annotations

from pathlib import Path

from smslink_gateway import commands as c
from smslink_gateway.component import normalize_phone
from smslink_gateway.events import SmsStatus
from smslink_gateway.store import Store


def test_parse_commands() -> None:
    assert c.parse("WHO") == c.Who()
    assert c.parse("  who  ") == c.Who()
    assert c.parse("msg alice see you at 5") == c.Msg("alice", "see you at 5")
    assert c.parse("@bob hi there") == c.Msg("bob", "hi there")
    assert c.parse("ADD carol") == c.Add("carol")
    assert c.parse("add carol@other.example") == c.Add("carol@other.example")
    assert c.parse("DEL carol") == c.Remove("carol")
    assert c.parse("help") == c.Help()
    assert c.parse("MSG alice") == c.Malformed("MSG name text")
    assert c.parse("ADD") == c.Malformed("ADD name")
    assert c.parse("ADD two words") == c.Malformed("ADD name")
    assert c.parse("@") == c.Malformed("@name text")
    # Anything else is plain text, kept as written (not upper-cased).
    assert c.parse("Whoever wins") == c.Plain("Whoever wins")
    assert c.parse("msgs are fun") == c.Plain("msgs are fun")


def test_answers_fit_one_sms() -> None:
    assert c.fits_one_sms(c.HELP_TEXT)
    many = [f"buddy{i}" for i in range(60)]
    text = c.who_text([(n, None) for n in many], many)
    # "~" is a GSM extension character (two septets): 158 + 2 = 160.
    assert len(text) == c.SMS_MAX - 1 and text.endswith("~") and c.fits_one_sms(text)
    assert c.who_text([("alice", "away"), ("bob", None)], ["carol"]) == (
        "Online: alice (away), bob. Offline: carol"
    )
    assert c.who_text([], ["carol"]) == "Nobody online. Offline: carol"
    assert c.who_text([], []).startswith("You have no buddies")
    # Names GSM lacks make it a UCS-2 SMS: 70 characters.
    cut = c.who_text([("中文" * 3, None)] * 20, [])
    assert len(cut) == 70 and cut.endswith("~") and c.fits_one_sms(cut)
    assert "error 300 (incorrect destination address)" in c.smsc_error_text(300)
    assert "error 9999 (rejected)" in c.smsc_error_text(9999)


def test_phone_numbers() -> None:
    assert normalize_phone("+61 400-000-001") == "+61400000001"
    assert normalize_phone("61400000001") == "61400000001"
    assert normalize_phone("alice") is None
    assert normalize_phone("+12") is None


def test_store_roundtrip(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.db")
    s = Store(path)
    assert s.add_buddy("+61400000001", "alice@example.test", "alice")
    assert not s.add_buddy("+61400000001", "alice@example.test", "alice")
    s.set_buddy_subscribed("+61400000001", "alice@example.test", True)
    s.add_watcher("+61400000001", "bob@example.test")
    s.set_last_peer("+61400000001", "bob@example.test")
    s.set_last_peer("+61400000001", "alice@example.test")
    assert s.inbox_put("au", 7, "+61400000001", "12345", "hi")
    assert not s.inbox_put("au", 7, "+61400000001", "12345", "hi")  # same slot: once
    r1 = s.outbox_put("12345", "+61400000001", "alice: one", "alice@example.test/pc", "m1", True)
    r2 = s.outbox_put("12345", "+61400000001", "alice: two")
    s.outbox_sent(r1, "au", 1)
    s.close()

    # Everything is still there after a restart.
    s = Store(path)
    assert [b.jid for b in s.buddies("+61400000001")] == ["alice@example.test"]
    assert s.buddies("+61400000001")[0].subscribed
    assert s.buddy_by_name("+61400000001", "ALICE") is not None
    assert s.subscribed_buddy_pairs() == [("+61400000001", "alice@example.test")]
    assert s.is_watcher("+61400000001", "bob@example.test")
    assert s.last_peer("+61400000001") == "alice@example.test"
    assert [i.text for i in s.inbox()] == ["hi"]
    assert [i.ref for i in s.outbox_queued()] == [r2]
    item = s.outbox_get(r1)
    assert item is not None and (item.link, item.seq, item.want_receipt) == ("au", 1, True)
    s.outbox_done(r1)
    s.outbox_done(r2)
    # Refs are never reused, so a late status of an old message cannot hit a new one.
    assert s.outbox_put("12345", "+61400000001", "three") > r2
    s.close()


def test_sms_status_final_and_rejected() -> None:
    ok = SmsStatus("au", 1, 1, "Processed", None, True)
    assert ok.final and not ok.rejected
    refused = SmsStatus("au", 4, 9, "processed", 300, False)
    assert refused.final and refused.rejected
    assert not SmsStatus("au", 1, 1, "Confirmed", None, None).final


def test_a_long_chat_is_one_message_refused_only_beyond_255_parts() -> None:
    assert c.chat_sms("alice", "hi") == "alice: hi"
    words = " ".join(f"word{i}" for i in range(60))  # ~ 400 characters
    assert c.chat_sms("alice", words) == "alice: " + words
    assert c.sms_parts("alice: " + words) == 3  # 153 GSM characters a part
    # A character GSM lacks: UCS-2, 67 a part.
    assert c.sms_parts("中" * 100) == 2
    assert c.chat_sms("bob", "中" * 100) == "bob: " + "中" * 100
    assert c.chat_sms("alice", "x" * (255 * 153)) is None
    assert c.sms_parts("x" * (255 * 153)) == 255
    assert c.sms_parts("x" * (255 * 153 + 1)) == 256


def test_chats_wait_for_their_report_across_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "gw.db")
    s = Store(db)
    ref = s.outbox_put("12345", "+61400000001", "alice: hi", "alice@example.org/pc", "m1", True)
    item = s.outbox_get(ref)
    assert item is not None
    s.await_report(item)
    # A command's answer has no chat behind it: nothing waits for its report.
    answer = s.outbox_put("12345", "+61400000001", "Usage: ...")
    answer_item = s.outbox_get(answer)
    assert answer_item is not None
    s.await_report(answer_item)
    s.close()
    s = Store(db)
    waiting = s.awaiting_report(ref)
    assert waiting is not None
    assert (waiting.from_jid, waiting.msg_id, waiting.want_receipt) == ("alice@example.org/pc", "m1", True)
    assert s.awaiting_report(answer) is None
    s.report_done(ref)
    assert s.awaiting_report_count() == 0
    s.close()


def test_a_hopped_chat_is_taken_into_the_outbox_once(tmp_path: Path) -> None:
    """Two instances on one store file: the entry one took is not taken again by the
    other (its taker died before acknowledging it), and requeueing is per link."""
    path = str(tmp_path / "shared.db")
    first, second = Store(path), Store(path)
    ref = first.outbox_put_hopped("mt:nz/1-0", "12345", "+64210000001", "alice: hi", "alice@x/pc")
    assert ref is not None
    assert second.outbox_put_hopped("mt:nz/1-0", "12345", "+64210000001", "alice: hi") is None
    assert [i.ref for i in second.outbox_queued()] == [ref]
    au = second.outbox_put("12345", "+61400000001", "bob: hi")
    first.outbox_sent(ref, "nz", 7)
    first.outbox_sent(au, "au", 3)
    assert [i.ref for i in second.outbox_sent_on("nz")] == [ref]
    # The link moved and its journal did not keep the message: only that link's goes again.
    assert second.outbox_requeue_unfinished(frozenset(), link="nz") == 1
    assert [i.ref for i in first.outbox_queued()] == [ref]
    assert first.outbox_get(au) is not None and first.outbox_get(au).link == "au"  # type: ignore[union-attr]
    # Acknowledged in Redis: the stream will not hand it out again, nothing kept.
    second.hops_done(["mt:nz/1-0"])
    assert first.db.execute("SELECT count(*) FROM hopped").fetchone()[0] == 0
    first.close()
    second.close()

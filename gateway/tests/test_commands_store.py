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


def test_long_chats_split_into_sms_that_fit() -> None:
    assert c.split_chat("alice", "hi") == ["alice: hi"]
    words = " ".join(f"word{i}" for i in range(60))  # ~ 400 characters
    parts = c.split_chat("alice", words)
    assert parts is not None and len(parts) == 3
    assert all(c.fits_one_sms(p) for p in parts)
    assert [p.split(": ", 1)[0] for p in parts] == ["alice (1/3)", "alice (2/3)", "alice (3/3)"]
    # Cut between words, nothing lost or repeated.
    assert " ".join(p.split(": ", 1)[1] for p in parts) == words
    # A character GSM lacks: UCS-2, 70 per SMS.
    han = "中" * 100
    parts = c.split_chat("bob", han)
    assert parts is not None and len(parts) == 2
    assert "".join(p.split(": ", 1)[1] for p in parts) == han
    assert all(c.fits_one_sms(p) for p in parts)
    assert c.split_chat("alice", "x" * 2000) is None

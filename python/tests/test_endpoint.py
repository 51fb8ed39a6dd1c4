"""The endpoint through a real link on loopback: both directions, acknowledgement
outcomes, routing, batches, cursors, full rings, closing."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import List, Tuple

import pytest

import smslink
from smslink import Endpoint, MessageReceived, StatusChanged

from conftest import WAIT, eventually, link, start_pair, wait_event

Pair = Tuple[Endpoint, Endpoint]


def test_both_directions_with_acks_and_statuses(pair: Pair) -> None:
    im, bs = pair
    # IM -> phone side (MT).
    r = im.send("12345", "+61400000001", "hello phone", client_ref=77)
    assert (r.link, r.seq) == ("im", 1)
    got = wait_event(bs, MessageReceived)
    assert (got.link, got.seq, got.sender, got.recipient) == ("bs", 1, "12345", "+61400000001")
    assert got.text == "hello phone" and got.data is None
    bs.ack(got.link, got.seq)
    states: List[str] = []
    done = wait_event(
        im, StatusChanged, lambda s: states.append(s.state) is None and s.state == "processed"
    )
    assert states == ["sent", "confirmed", "processed"]
    assert done.accepted and done.error_code is None and done.client_ref == 77
    # Phone side -> IM (MO), binary this time, refused by the IM application.
    r2 = bs.send("+61400000001", "12345", data=b"\x00\xffbin")
    mo = wait_event(im, MessageReceived)
    assert mo.data == b"\x00\xffbin" and mo.text is None and mo.seq == r2.seq
    im.ack(mo.link, mo.seq, error_code=42)
    refused = wait_event(bs, StatusChanged, lambda s: s.state == "processed")
    assert refused.seq == r2.seq and not refused.accepted and refused.error_code == 42


def test_many_messages_arrive_once_in_order(pair: Pair) -> None:
    im, bs = pair
    n = 500
    sent = 0
    received: List[str] = []
    processed = 0
    deadline = time.monotonic() + 60
    while processed < n:
        assert time.monotonic() < deadline, f"stalled at {processed} of {n}"
        while sent < n:
            try:
                im.send("1", "2", f"m{sent}")
            except smslink.RingFull:
                break
            sent += 1
        for ev in bs.poll_events():
            if isinstance(ev, MessageReceived):
                received.append(ev.text or "")
                bs.ack(ev.link, ev.seq)
        # Both sides are served by this one thread: wait only briefly on each.
        for ev in [im.next_event(timeout=0.01)] + im.poll_events():
            if isinstance(ev, StatusChanged) and ev.state == "processed":
                processed += 1
    assert received == [f"m{i}" for i in range(n)]
    assert eventually(lambda: im.link_stats("im").tx.processed == n)
    stats = im.link_stats("im")
    assert stats.up
    assert stats.counters["data_sent"] >= n
    # Every message was confirmed once, after a positive time on the wire.
    assert stats.ack_latency_count == n and stats.ack_latency_sum > 0
    assert stats.tx_backlog == 0 and stats.last_error is None


def test_full_ring_refuses_then_frees() -> None:
    im, bs = start_pair(capacity=4)
    try:
        for i in range(4):
            assert im.send("1", "2", f"x{i}").seq == i + 1
        assert im.free_slots("im") == 0
        with pytest.raises(smslink.RingFull, match=r'link "im" is full: 4 messages'):
            im.send("1", "2", "one too many")
        assert not im.wait_for_room("im", timeout=0.05), "nobody acknowledged yet"
        for _ in range(4):
            ev = wait_event(bs, MessageReceived)
            bs.ack(ev.link, ev.seq)
        assert im.wait_for_room("im", timeout=WAIT, min_room=4)
        assert im.send("1", "2", "now there is room").seq == 5
        # Waiting for room took no event off the endpoint: every status is there.
        processed = [
            e.seq
            for e in im.poll_events()
            if isinstance(e, StatusChanged) and e.state == "processed"
        ]
        assert processed == [1, 2, 3, 4]
    finally:
        bs.close(0)
        im.close(0)


def test_wait_for_room_asks_at_most_the_capacity() -> None:
    with Endpoint([link("im", "x", listen="127.0.0.1:0", capacity=4)]) as ep:
        # An empty ring has all its room; more than the capacity is not waited for.
        assert ep.wait_for_room("im", timeout=0, min_room=1000)
        ep.send("1", "2", "one", link="im")
        assert ep.wait_for_room("im", timeout=0, min_room=3)
        assert not ep.wait_for_room("im", timeout=0, min_room=4)
        with pytest.raises(smslink.UnknownLink):
            ep.wait_for_room("nope", timeout=0)


class _Interrupted(Exception):
    pass


def test_wait_for_room_is_interrupted_by_a_signal() -> None:
    """A wait without timeout on a ring nobody empties ends with the exception the
    signal handler raises (as Ctrl-C raises KeyboardInterrupt)."""

    def on_alarm(_signum: int, _frame: object) -> None:
        raise _Interrupted()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with Endpoint([link("im", "x", listen="127.0.0.1:0", capacity=1)]) as ep:
            ep.send("1", "2", "fills it", link="im")
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            start = time.monotonic()
            with pytest.raises(_Interrupted):
                ep.wait_for_room("im")
            assert time.monotonic() - start < WAIT
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_closing_wakes_a_blocked_wait_for_room() -> None:
    ep = Endpoint([link("im", "x", listen="127.0.0.1:0", capacity=1)])
    ep.send("1", "2", "fills it", link="im")
    outcome: List[BaseException] = []
    entered = threading.Event()

    def waiter() -> None:
        entered.set()
        try:
            ep.wait_for_room("im")
        except BaseException as e:  # noqa: B036 - handed to the test thread
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    assert entered.wait(WAIT)
    ep.close(0)
    t.join(WAIT)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], smslink.ClosedError)


def test_send_batch_takes_what_fits_in_order() -> None:
    im, bs = start_pair(capacity=8)
    try:
        batch = [("1", "2", f"b{i}", i) for i in range(10)]
        assert im.send_batch("im", batch) == 8
        assert im.send_batch("im", batch[8:]) == 0
        texts = []
        for _ in range(8):
            ev = wait_event(bs, MessageReceived)
            texts.append((ev.text, ev.seq))
            bs.ack(ev.link, ev.seq)
        assert texts == [(f"b{i}", i + 1) for i in range(8)]
        refs = [
            wait_event(im, StatusChanged, lambda s: s.state == "processed").client_ref
            for _ in range(8)
        ]
        assert refs == list(range(8)), "each status carries the sender's client_ref"
        assert im.wait_for_room("im", timeout=WAIT)
        assert im.send_batch("im", [("1", "2", b"raw")]) == 1
        assert wait_event(bs, MessageReceived).data == b"raw"
        with pytest.raises(smslink.InvalidMessage, match="tuples"):
            im.send_batch("im", ["not a tuple"])  # type: ignore[list-item]
    finally:
        bs.close(0)
        im.close(0)


def test_prefix_routing_longest_wins() -> None:
    ep = Endpoint(
        [
            link("au", "x", listen="127.0.0.1:0", prefixes=["+61"]),
            link("au4", "x", listen="127.0.0.1:0", prefixes=["+614"]),
            link("rest", "x", listen="127.0.0.1:0", default=True),
        ]
    )
    with ep:
        assert ep.links == ["au", "au4", "rest"]
        assert ep.route("+61299999999") == "au"
        assert ep.route("+61400000001") == "au4"
        assert ep.route("+4670000001") == "rest"
        assert ep.send("1", "+61400000001", "x").link == "au4"
        assert ep.send("1", "+61400000001", "x", link="rest").link == "rest"
    assert ep.closed


def test_no_route_without_default() -> None:
    with Endpoint([link("au", "x", listen="127.0.0.1:0", prefixes=["+61"])]) as ep:
        with pytest.raises(smslink.NoRoute, match="default=True"):
            ep.send("1", "+4670000001", "x")
        assert ep.route("+4670000001") is None


def test_stats_snapshot_shapes(pair: Pair) -> None:
    im, _ = pair
    s = im.link_stats("im")
    assert s.name == "im" and s.capacity == 255 and s.peer == "bs"
    assert s.local_addr == im.local_addr("im")
    assert (s.tx.retrieved, s.rx.stored) == (0, 0)
    assert set(s.counters) >= {"bytes_in", "frames_out", "link_downs", "duplicates"}
    assert im.smsc_stats() is None
    assert isinstance(im.fileno(), int) and im.fileno() >= 0


def test_status_events_filter_keeps_only_what_is_asked() -> None:
    im, bs = start_pair(status_events=["processed"])
    try:
        wait_event(im, smslink.LinkUp)
        im.send("1", "2", "x")
        ev = wait_event(bs, MessageReceived)
        bs.ack(ev.link, ev.seq)
        st = wait_event(im, StatusChanged)
        assert st.state == "processed", "sent/confirmed were filtered out"
    finally:
        bs.close(0)
        im.close(0)


def test_close_is_final_and_idempotent() -> None:
    im, bs = start_pair()
    assert bs.close(0) in (True, False)
    assert im.close(0)
    assert im.closed and im.close(0)
    with pytest.raises(smslink.ClosedError, match="closed"):
        im.send("1", "2", "late")
    with pytest.raises(smslink.ClosedError):
        im.ack("im", 1)
    # What happened before the close is still delivered, then None at once.
    rest = []
    while (ev := im.next_event(timeout=WAIT)) is not None:
        rest.append(ev)
        assert len(rest) < 10, rest
    assert all(isinstance(e, (smslink.LinkUp, smslink.LinkDown)) for e in rest), rest
    assert "closed" in repr(im)


def test_a_journal_reports_each_message_durable_before_its_status(tmp_path: Path) -> None:
    im, bs = start_pair(journal_dir=tmp_path, journal_sync="always", journal_max_disk_bytes=1 << 24)
    try:
        wait_event(im, smslink.LinkUp)
        r = im.send("12345", "+61400000001", "kept", client_ref=5)
        seen: List[object] = []
        durable = wait_event(im, smslink.Durable, seen=seen)
        assert (durable.link, durable.seq, durable.client_ref) == (r.link, r.seq, 5)
        assert not any(isinstance(e, StatusChanged) for e in seen), seen
        got = wait_event(bs, MessageReceived)
        bs.ack(got.link, got.seq)
        wait_event(im, StatusChanged, lambda s: s.state == "processed")
    finally:
        bs.close(0)
        im.close(0)

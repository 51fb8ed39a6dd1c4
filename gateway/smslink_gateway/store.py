"""The gateway's durable state in SQLite: phone users' buddy lists, who watches which
phone's presence, the last person each phone talked to, the SMS inbox (MO stored
before it is acknowledged) and the SMS outbox (MT waiting for a ring slot or for its
final status)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterator, Optional

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buddies (
    phone TEXT NOT NULL,
    jid TEXT NOT NULL,
    name TEXT NOT NULL,
    subscribed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (phone, jid)
);
CREATE TABLE IF NOT EXISTS watchers (
    phone TEXT NOT NULL,
    jid TEXT NOT NULL,
    PRIMARY KEY (phone, jid)
);
CREATE TABLE IF NOT EXISTS last_peer (
    phone TEXT PRIMARY KEY,
    jid TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    link TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (link, seq)
);
-- AUTOINCREMENT: a ref is never reused, even across restarts, so a late status
-- of an old message can never be taken for a new one.
CREATE TABLE IF NOT EXISTS outbox (
    ref INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    from_jid TEXT,
    msg_id TEXT,
    want_receipt INTEGER NOT NULL DEFAULT 0,
    link TEXT,
    seq INTEGER
);
-- MT the SMSC accepted, until its delivery report: `ref` is the client_ref the
-- report names; the chat's sender and stanza id get the receipt or the error.
CREATE TABLE IF NOT EXISTS awaiting_report (
    ref INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    from_jid TEXT NOT NULL,
    msg_id TEXT,
    want_receipt INTEGER NOT NULL DEFAULT 0
);
-- Several gateway instances (cluster mode): the ids of the hop entries already
-- taken into the outbox, written in the same transaction as the outbox row, so
-- an entry taken again after its taker died is not sent twice.
CREATE TABLE IF NOT EXISTS hopped (
    hop_id TEXT PRIMARY KEY,
    ref INTEGER NOT NULL
);
"""

#: Chats kept waiting for their delivery report (an SMSC that sends none, or loses
#: some, must not grow the store without end): the oldest go first.
MAX_AWAITING_REPORT = 10000


@dataclass(frozen=True)
class Buddy:
    jid: str
    name: str
    subscribed: bool


@dataclass(frozen=True)
class InboxItem:
    id: int
    link: str
    seq: int
    sender: str
    recipient: str
    text: str


@dataclass(frozen=True)
class OutboxItem:
    ref: int
    sender: str
    phone: str
    text: str
    from_jid: Optional[str]
    msg_id: Optional[str]
    want_receipt: bool
    link: Optional[str]
    seq: Optional[int]


class Store:
    def __init__(self, path: str) -> None:
        # Used from the gateway's event-loop thread only.
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: an MO is acknowledged to the buffer once its row is on disk.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- buddies of phone users ------------------------------------------------

    def add_buddy(self, phone: str, jid: str, name: str) -> bool:
        """True when the buddy is new."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO buddies (phone, jid, name) VALUES (?, ?, ?)",
            (phone, jid, name),
        )
        return cur.rowcount == 1

    def remove_buddy(self, phone: str, jid: str) -> bool:
        cur = self.db.execute("DELETE FROM buddies WHERE phone = ? AND jid = ?", (phone, jid))
        return cur.rowcount == 1

    def set_buddy_subscribed(self, phone: str, jid: str, subscribed: bool) -> None:
        self.db.execute(
            "UPDATE buddies SET subscribed = ? WHERE phone = ? AND jid = ?",
            (int(subscribed), phone, jid),
        )

    def buddies(self, phone: str) -> list[Buddy]:
        rows = self.db.execute(
            "SELECT jid, name, subscribed FROM buddies WHERE phone = ? ORDER BY name", (phone,)
        )
        return [Buddy(j, n, bool(s)) for j, n, s in rows]

    def buddy_by_name(self, phone: str, name: str) -> Optional[Buddy]:
        row = self.db.execute(
            "SELECT jid, name, subscribed FROM buddies WHERE phone = ? AND lower(name) = lower(?)",
            (phone, name),
        ).fetchone()
        return None if row is None else Buddy(row[0], row[1], bool(row[2]))

    def buddy(self, phone: str, jid: str) -> Optional[Buddy]:
        row = self.db.execute(
            "SELECT jid, name, subscribed FROM buddies WHERE phone = ? AND jid = ?", (phone, jid)
        ).fetchone()
        return None if row is None else Buddy(row[0], row[1], bool(row[2]))

    def subscribed_buddy_pairs(self) -> list[tuple[str, str]]:
        return list(self.db.execute("SELECT phone, jid FROM buddies WHERE subscribed = 1"))

    # -- PC users watching a phone's presence -----------------------------------

    def add_watcher(self, phone: str, jid: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO watchers (phone, jid) VALUES (?, ?)", (phone, jid))

    def remove_watcher(self, phone: str, jid: str) -> None:
        self.db.execute("DELETE FROM watchers WHERE phone = ? AND jid = ?", (phone, jid))

    def is_watcher(self, phone: str, jid: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM watchers WHERE phone = ? AND jid = ?", (phone, jid)
        ).fetchone()
        return row is not None

    def watchers(self) -> list[tuple[str, str]]:
        return list(self.db.execute("SELECT phone, jid FROM watchers"))

    # -- whom a plain SMS answers ------------------------------------------------

    def set_last_peer(self, phone: str, jid: Optional[str]) -> None:
        """`None`: a plain SMS answers nobody (it gets the help text)."""
        if jid is None:
            self.db.execute("DELETE FROM last_peer WHERE phone = ?", (phone,))
            return
        self.db.execute(
            "INSERT INTO last_peer (phone, jid) VALUES (?, ?) "
            "ON CONFLICT (phone) DO UPDATE SET jid = excluded.jid",
            (phone, jid),
        )

    def last_peer(self, phone: str) -> Optional[str]:
        row = self.db.execute("SELECT jid FROM last_peer WHERE phone = ?", (phone,)).fetchone()
        return None if row is None else str(row[0])

    # -- inbox: MO stored, then acknowledged, then handled ------------------------

    def inbox_put(self, link: str, seq: int, sender: str, recipient: str, text: str) -> bool:
        """Store an MO; False when the same (link, seq) is already waiting."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO inbox (link, seq, sender, recipient, text) VALUES (?, ?, ?, ?, ?)",
            (link, seq, sender, recipient, text),
        )
        return cur.rowcount == 1

    def inbox(self) -> list[InboxItem]:
        rows = self.db.execute(
            "SELECT id, link, seq, sender, recipient, text FROM inbox ORDER BY id"
        )
        return [InboxItem(*r) for r in rows]

    def inbox_done(self, item_id: int) -> None:
        self.db.execute("DELETE FROM inbox WHERE id = ?", (item_id,))

    # -- outbox: MT until its final status ---------------------------------------

    def outbox_put(
        self,
        sender: str,
        phone: str,
        text: str,
        from_jid: Optional[str] = None,
        msg_id: Optional[str] = None,
        want_receipt: bool = False,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO outbox (sender, phone, text, from_jid, msg_id, want_receipt) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (sender, phone, text, from_jid, msg_id, int(want_receipt)),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def outbox_put_hopped(
        self,
        hop_id: str,
        sender: str,
        phone: str,
        text: str,
        from_jid: Optional[str] = None,
        msg_id: Optional[str] = None,
        want_receipt: bool = False,
    ) -> Optional[int]:
        """`outbox_put` for a chat handed over by another gateway instance under
        `hop_id`, once only: None when that hop was taken into the outbox before."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            seen = self.db.execute("SELECT 1 FROM hopped WHERE hop_id = ?", (hop_id,)).fetchone()
            ref = None
            if seen is None:
                ref = self.outbox_put(sender, phone, text, from_jid, msg_id, want_receipt)
                self.db.execute("INSERT INTO hopped (hop_id, ref) VALUES (?, ?)", (hop_id, ref))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return ref

    def hops_done(self, hop_ids: list[str]) -> None:
        """The hop entries are acknowledged where they came from: no taker sees them again."""
        self.db.executemany("DELETE FROM hopped WHERE hop_id = ?", [(h,) for h in hop_ids])

    def _items(self, where: str, args: tuple[object, ...] = ()) -> Iterator[OutboxItem]:
        rows = self.db.execute(
            "SELECT ref, sender, phone, text, from_jid, msg_id, want_receipt, link, seq "
            f"FROM outbox WHERE {where} ORDER BY ref",
            args,
        )
        for r in rows.fetchall():
            yield OutboxItem(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8])

    def outbox_queued(self) -> list[OutboxItem]:
        """MT not yet handed to the communication buffer, oldest first."""
        return list(self._items("link IS NULL"))

    def outbox_sent_on(self, link: str) -> list[OutboxItem]:
        """MT handed to `link`'s endpoint whose final status has not come yet."""
        return list(self._items("link = ?", (link,)))

    def outbox_get(self, ref: int) -> Optional[OutboxItem]:
        return next(self._items("ref = ?", (ref,)), None)

    def outbox_sent(self, ref: int, link: str, seq: int) -> None:
        self.db.execute("UPDATE outbox SET link = ?, seq = ? WHERE ref = ?", (link, seq, ref))

    def outbox_requeue_unfinished(
        self, keep: frozenset[int] = frozenset(), link: Optional[str] = None
    ) -> int:
        """Put MT whose final status never came (the previous run ended first) back
        in the queue, except those in `keep` (the endpoint's journal still holds
        them); only those sent on `link` when given; returns how many."""
        if link is None:
            cur = self.db.execute("SELECT ref FROM outbox WHERE link IS NOT NULL")
        else:
            cur = self.db.execute("SELECT ref FROM outbox WHERE link = ?", (link,))
        again = [int(ref) for (ref,) in cur if int(ref) not in keep]
        self.db.executemany("UPDATE outbox SET link = NULL, seq = NULL WHERE ref = ?", [(r,) for r in again])
        return len(again)

    def outbox_done(self, ref: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE ref = ?", (ref,))

    def outbox_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    # -- MT accepted by the SMSC, waiting for the delivery report ----------------

    def await_report(self, item: OutboxItem) -> None:
        """Remember a chat's MT until its report (survives a restart). Only chats
        (with a `from_jid`) are kept: nobody waits for a command's answer."""
        if item.from_jid is None:
            return
        self.db.execute(
            "INSERT OR REPLACE INTO awaiting_report "
            "(ref, sender, phone, text, from_jid, msg_id, want_receipt) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item.ref, item.sender, item.phone, item.text, item.from_jid, item.msg_id,
             int(item.want_receipt)),
        )
        self.db.execute(
            "DELETE FROM awaiting_report WHERE ref <= "
            "(SELECT ref FROM awaiting_report ORDER BY ref DESC LIMIT 1 OFFSET ?)",
            (MAX_AWAITING_REPORT,),
        )

    def awaiting_report(self, ref: int) -> Optional[OutboxItem]:
        r = self.db.execute(
            "SELECT ref, sender, phone, text, from_jid, msg_id, want_receipt "
            "FROM awaiting_report WHERE ref = ?",
            (ref,),
        ).fetchone()
        if r is None:
            return None
        return OutboxItem(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), None, None)

    def report_done(self, ref: int) -> None:
        self.db.execute("DELETE FROM awaiting_report WHERE ref = ?", (ref,))

    def awaiting_report_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM awaiting_report").fetchone()[0])

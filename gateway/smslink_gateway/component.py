"""The XMPP side: an external component (XEP-0114) named e.g. `sms.example.org`.

Each phone number is a contact `+61400000001@sms.example.org`. PC users chat with it,
subscribe to its presence (which follows the state of the SMS link that serves the
number), and get the phone's SMS back as chat messages from it. Phone users send SMS
commands (see `commands`) and have buddy lists of their own, kept in SQLite; the
component subscribes to the buddies' presence on their behalf.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import smslink
from slixmpp import JID, InvalidJID
from slixmpp.componentxmpp import ComponentXMPP
from slixmpp.stanza import Iq, Message, Presence
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from . import commands
from .events import (
    AckLater,
    EndpointAdapter,
    EndpointClosed,
    Event,
    LinkDown,
    LinkUp,
    RingFull,
    SendFailed,
    SmsBuffer,
    SmsIn,
    SmsReport,
    SmsStatus,
)
from .metrics import GatewayMetrics
from .store import InboxItem, OutboxItem, Store

log = logging.getLogger("smslink_gateway")

_PHONE = re.compile(r"^\+?[0-9]{3,20}$")
#: Chats remembered for error handling (answered failures, `MSG` reply targets).
MAX_REMEMBERED = 1000
_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
#: Marks a long SMS some of whose parts never arrived.
PART_MISSING = "[part missing]"


class GatewayQuery(ElementBase):
    """jabber:iq:gateway (XEP-0100 section 6.3): clients ask the gateway to turn what
    a user typed (a phone number) into the contact's JID."""

    name = "query"
    namespace = "jabber:iq:gateway"
    plugin_attrib = "gateway"
    interfaces = {"desc", "prompt", "jid"}
    sub_interfaces = interfaces


register_stanza_plugin(Iq, GatewayQuery)


@dataclass(frozen=True)
class Route:
    """Which link serves which numbers (mirrors the endpoint's own prefix routing,
    so that a phone contact's presence can follow its link)."""

    link: str
    prefixes: list[str] = field(default_factory=list)
    default: bool = False


def normalize_phone(s: str) -> Optional[str]:
    n = re.sub(r"[\s\-().]", "", s)
    return n if _PHONE.match(n) else None


def stanza_error(msg: Message) -> tuple[str, str]:
    """The defined condition and text of an error stanza, read from its XML. (A
    component's stanzas are in the component namespace, where `msg["error"]` finds
    no error element and makes up a fresh one: "feature-not-implemented".)"""
    condition, text = "undefined-condition", ""
    for el in msg.xml:
        if not el.tag.endswith("}error") and el.tag != "error":
            continue
        for child in el:
            ns, _, local = child.tag[1:].partition("}")
            if ns != _STANZAS:
                continue
            if local == "text":
                text = (child.text or "").strip()
            else:
                condition = local
    return condition, text


# What an XMPP error condition means to the phone user who wrote.
_UNDELIVERED = {
    "service-unavailable": "{who} is not a user here.",
    "item-not-found": "{who} is not a user here.",
    "recipient-unavailable": "{who} is not reachable now.",
    "remote-server-not-found": "{who}'s server cannot be reached.",
    "remote-server-timeout": "{who}'s server does not answer.",
    "forbidden": "{who} does not accept your messages.",
    "not-allowed": "{who} does not accept your messages.",
    "policy-violation": "{who}'s server refused the message.",
    "resource-constraint": "{who}'s server is busy; try again later.",
}


def undelivered_text(who: str, condition: str, text: str) -> str:
    """The SMS a phone gets when its chat to `who` failed with `condition`."""
    words = _UNDELIVERED.get(condition)
    if words is not None:
        return "Not delivered: " + words.format(who=who)
    return f"Not delivered to {who}: {text or condition}"


class Gateway(ComponentXMPP):
    """The component. `jid`/`secret`: its name and the server's component_secret;
    `server`/`port`: the server's component port. `endpoint`: the IM-side
    `smslink.Endpoint` (or any other `SmsBuffer`); `store`: its SQLite state;
    `sms_number`: the sender phones see and reply to; `routes`: only when the
    endpoint cannot say which link serves a number; `metrics`: where to count (a
    fresh `GatewayMetrics` by default; serving it over HTTP is the caller's choice).
    Call `start()` inside a running event loop and `await stop()` at the end."""

    def __init__(
        self,
        jid: str,
        secret: str,
        server: str,
        port: int,
        *,
        endpoint: Union[smslink.Endpoint, SmsBuffer],
        store: Store,
        sms_number: str,
        routes: Optional[list[Route]] = None,
        user_domain: Optional[str] = None,
        retry_interval: float = 0.5,
        reconnect_interval: float = 1.0,
        down_grace: float = 3.0,
        metrics: Optional[GatewayMetrics] = None,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            jid,
            secret,
            server,
            port,
            plugin_config={"xep_0184": {"auto_ack": False, "auto_request": False}},
        )
        self.sms: SmsBuffer = (
            EndpointAdapter(endpoint) if isinstance(endpoint, smslink.Endpoint) else endpoint
        )
        # Once the endpoint is closed nothing more is sent: the outbox keeps what is
        # queued for the next run instead of retrying as if a ring were full.
        self.sms_closed = False
        self.store = store
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        if isinstance(endpoint, smslink.Endpoint):
            self.metrics.expect_links(endpoint.links)
        elif routes is not None:
            self.metrics.expect_links(r.link for r in routes)
        self.sms_number = sms_number
        # Without explicit routes, the endpoint's own prefix routing decides.
        self.routes = routes
        domain = JID(jid).domain
        self.user_domain = user_domain or domain.split(".", 1)[-1]
        self.retry_interval = retry_interval
        self.reconnect_interval = reconnect_interval
        self.link_up: dict[str, bool] = {}
        # What phone contacts' presence says about each link. A cut the link heals
        # within `down_grace` seconds (it reconnects and resends by itself) is not
        # worth two presence changes to every watcher.
        self.link_shown_up: dict[str, bool] = {}
        self.down_grace = down_grace
        self._down_timers: dict[str, asyncio.TimerHandle] = {}
        # phone -> buddy bare JID -> resource -> show ("" when plainly available)
        self.buddy_presence: dict[str, dict[str, dict[str, str]]] = {}
        self._events_task: Optional[asyncio.Task[None]] = None
        self._retry_handle: Optional[asyncio.TimerHandle] = None
        self._pending_acks: list[tuple[str, int]] = []
        # Chats sent by `MSG name`, by stanza id: (phone, target, the reply target
        # before). An error for one puts the reply target back (bounded).
        self._msg_sent: dict[str, tuple[str, str, Optional[str]]] = {}
        # Inbox rows handled but kept until the server has surely read what they
        # became (see `inbox_handled`); not handled again meanwhile.
        self.inbox_in_flight: set[int] = set()
        self._stopping = False
        self.online = False

        self.register_plugin("xep_0030")
        self.register_plugin("xep_0184")
        disco = self.plugin["xep_0030"]
        disco.add_identity(category="gateway", itype="sms", name="SMS gateway")
        for feature in ("jabber:iq:gateway", "urn:xmpp:receipts"):
            disco.add_feature(feature)
        self.register_handler(
            Callback("SMS gateway prompt", StanzaPath("iq/gateway"), self._on_gateway_iq)
        )

        # slixmpp keeps an in-memory roster for components and answers probes and
        # subscriptions from it; the gateway's store is the authority instead.
        self.roster.auto_authorize = None  # type: ignore[assignment]
        self.roster.auto_subscribe = False
        for name, handler in [
            ("presence_subscribe", self._handle_subscribe),
            ("presence_subscribed", self._handle_subscribed),
            ("presence_unsubscribe", self._handle_unsubscribe),
            ("presence_unsubscribed", self._handle_unsubscribed),
            ("presence_probe", self._handle_probe),
        ]:
            self.del_event_handler(name, handler)

        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("connection_failed", self._on_disconnected)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("message_error", self._on_message_error)
        self.add_event_handler("presence_subscribe", self._on_subscribe)
        self.add_event_handler("presence_unsubscribe", self._on_unsubscribe)
        self.add_event_handler("presence_subscribed", self._on_subscribed)
        self.add_event_handler("presence_unsubscribed", self._on_unsubscribed)
        self.add_event_handler("presence_probe", self._on_probe)
        for kind in ("available", "unavailable", "away", "chat", "dnd", "xa"):
            self.add_event_handler(f"presence_{kind}", self._on_buddy_presence)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Connect to the XMPP server and start consuming buffer events (call from
        inside the running event loop)."""
        self._stopping = False
        # MT handed to a previous run's endpoint and never finished: those its
        # journal gave back go out again by themselves; the others (no journal, or
        # not yet durable when the last run ended) are sent again. Without a journal
        # a message that was in flight at the SMSC may then arrive twice; none is lost.
        self.requeue_unfinished()
        self._events_task = asyncio.get_running_loop().create_task(self._consume_events())
        self.connect()
        self.pump_outbox()

    def requeue_unfinished(self) -> None:
        """At start: MT a previous run handed over whose final status it never saw."""
        again = self.store.outbox_requeue_unfinished(frozenset(self.sms.restored()))
        if again:
            log.warning("sending %d SMS again whose status the last run did not see", again)

    async def stop(self) -> None:
        self._stopping = True
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        for timer in self._down_timers.values():
            timer.cancel()
        if self._events_task is not None:
            self._events_task.cancel()
            try:
                await self._events_task
            except (asyncio.CancelledError, Exception):
                pass
        if self.online:
            for phone, jid in self.store.watchers():
                self.send_presence(pfrom=self.phone_jid(phone), pto=jid, ptype="unavailable")
            self.disconnect()
            await self.disconnected

    async def _consume_events(self) -> None:
        try:
            async for ev in self.sms.events():
                try:
                    self.on_sms_event(ev)
                except Exception:
                    self.metrics.error("internal")
                    log.exception("handling %r", ev)
        except Exception:
            log.exception("reading the smslink endpoint's events")
            raise
        self._sms_gone("no more SMS events")

    def _on_session_start(self, _: Any) -> None:
        self.online = True
        self.metrics.xmpp_connected.set(1)
        log.info("connected to the XMPP server as %s", self.boundjid)
        for phone, jid in self.store.watchers():
            self._send_phone_presence(phone, jid)
        for phone, jid in self.store.subscribed_buddy_pairs():
            self.send_presence(pfrom=self.phone_jid(phone), pto=jid, ptype="probe")
        self.process_inbox()
        self.pump_outbox()

    def _on_disconnected(self, _: Any) -> None:
        self.online = False
        self.metrics.xmpp_connected.set(0)
        self.buddy_presence.clear()
        self._count_users_online()
        if not self._stopping:
            log.warning("XMPP connection lost; reconnecting")
            asyncio.get_running_loop().call_later(self.reconnect_interval, self._reconnect)

    def _reconnect(self) -> None:
        if not self._stopping and not self.online:
            self.connect()

    # -- addressing ----------------------------------------------------------------

    def phone_jid(self, phone: str) -> JID:
        return JID(f"{phone}@{self.boundjid.domain}")

    def phone_of(self, jid: JID) -> Optional[str]:
        if jid.domain != self.boundjid.domain or not jid.user:
            return None
        return normalize_phone(jid.user)

    def route(self, phone: str) -> Optional[str]:
        if self.routes is None:
            return self.sms.route(phone)
        best: Optional[tuple[int, str]] = None
        for r in self.routes:
            for p in r.prefixes:
                if phone.startswith(p) and (best is None or len(p) > best[0]):
                    best = (len(p), r.link)
        if best is not None:
            return best[1]
        defaults = [r.link for r in self.routes if r.default]
        if defaults:
            return defaults[0]
        return self.routes[0].link if len(self.routes) == 1 else None

    def resolve_buddy(self, phone: str, name: str) -> Optional[tuple[str, str]]:
        """A name from an SMS: a buddy's name, a bare JID, or a user of our domain."""
        b = self.store.buddy_by_name(phone, name)
        if b is not None:
            return b.jid, b.name
        try:
            j = JID(name if "@" in name else f"{name}@{self.user_domain}")
        except InvalidJID:
            return None
        if not j.user:
            return None
        return j.bare, (j.user if j.domain == self.user_domain else j.bare)

    def _on_gateway_iq(self, iq: Any) -> None:
        if iq["type"] == "get":
            reply = iq.reply()
            reply["gateway"]["desc"] = "Enter the phone number in international format, e.g. +61400000001"
            reply["gateway"]["prompt"] = "Phone number"
            reply.send()
        elif iq["type"] == "set":
            phone = normalize_phone(iq["gateway"]["prompt"])
            if phone is None:
                err = iq.reply(clear=True)
                err["type"] = "error"
                err["error"]["type"] = "modify"
                err["error"]["condition"] = "not-acceptable"
                err["error"]["text"] = "not a phone number"
                err.send()
                return
            reply = iq.reply(clear=True)
            reply["gateway"]["jid"] = str(self.phone_jid(phone))
            reply.send()

    # -- presence of phone contacts (follows the link) ------------------------------

    def _send_phone_presence(self, phone: str, to: str) -> None:
        link = self.route(phone)
        if link is None:
            self.send_presence(pfrom=self.phone_jid(phone), pto=to, ptype="unavailable")
        elif self.link_shown_up.get(link, False):
            self.send_presence(pfrom=self.phone_jid(phone), pto=to, pstatus=f"SMS via {link}")
        else:
            self.send_presence(
                pfrom=self.phone_jid(phone),
                pto=to,
                pshow="away",
                pstatus=f"SMS link {link} is down; messages wait and go out when it is back",
            )

    def _on_subscribe(self, pres: Presence) -> None:
        if not pres["to"].user:
            # A user adding the gateway itself (clients list it as a transport).
            self.send_presence(pfrom=self.boundjid.bare, pto=pres["from"].bare, ptype="subscribed")
            self.send_presence(pfrom=self.boundjid.bare, pto=pres["from"].bare)
            return
        phone = self.phone_of(pres["to"])
        if phone is None:
            self.send_presence(pfrom=pres["to"], pto=pres["from"].bare, ptype="unsubscribed")
            return
        self.store.add_watcher(phone, pres["from"].bare)
        self.send_presence(pfrom=self.phone_jid(phone), pto=pres["from"].bare, ptype="subscribed")
        self._send_phone_presence(phone, pres["from"].bare)

    def _on_unsubscribe(self, pres: Presence) -> None:
        phone = self.phone_of(pres["to"])
        if phone is None:
            return
        self.store.remove_watcher(phone, pres["from"].bare)
        self.send_presence(pfrom=self.phone_jid(phone), pto=pres["from"].bare, ptype="unsubscribed")

    def _on_probe(self, pres: Presence) -> None:
        if not pres["to"].user:
            self.send_presence(pfrom=self.boundjid.bare, pto=pres["from"].bare)
            return
        phone = self.phone_of(pres["to"])
        if phone is None:
            return
        # The server only probes contacts its roster says the user subscribed to.
        self.store.add_watcher(phone, pres["from"].bare)
        self._send_phone_presence(phone, pres["from"].bare)

    # -- presence of phone users' buddies --------------------------------------------

    def _on_subscribed(self, pres: Presence) -> None:
        phone = self.phone_of(pres["to"])
        if phone is not None:
            self.store.set_buddy_subscribed(phone, pres["from"].bare, True)

    def _on_unsubscribed(self, pres: Presence) -> None:
        phone = self.phone_of(pres["to"])
        if phone is not None:
            self.store.set_buddy_subscribed(phone, pres["from"].bare, False)
            self.buddy_presence.get(phone, {}).pop(pres["from"].bare, None)
            self._count_users_online()

    def _on_buddy_presence(self, pres: Presence) -> None:
        phone = self.phone_of(pres["to"])
        if phone is None:
            return
        bare, resource = pres["from"].bare, pres["from"].resource
        per_buddy = self.buddy_presence.setdefault(phone, {})
        if pres["type"] == "unavailable":
            per_buddy.get(bare, {}).pop(resource, None)
            if not per_buddy.get(bare):
                per_buddy.pop(bare, None)
        else:
            show = pres["show"] or ""
            per_buddy.setdefault(bare, {})[resource] = show
        self._count_users_online()

    def _count_users_online(self) -> None:
        # A user who is the buddy of several phones counts once.
        users = {bare for per_buddy in self.buddy_presence.values() for bare in per_buddy}
        self.metrics.users_online.set(len(users))

    def buddy_show(self, phone: str, jid: str) -> Optional[str]:
        """None when offline, "" when available, else the best show value."""
        resources = self.buddy_presence.get(phone, {}).get(jid)
        if not resources:
            return None
        rank = {"chat": 0, "": 1, "away": 2, "xa": 3, "dnd": 4}
        return min(resources.values(), key=lambda s: rank.get(s, 5))

    # -- PC user -> phone ---------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        if msg["type"] not in ("chat", "normal", ""):
            return
        body = msg["body"]
        if not body:
            return  # chat states, receipts and the like have no SMS equivalent
        if not msg["to"].user:
            self._reply(msg, "Write to +<number>@" + self.boundjid.domain + " to send an SMS.")
            return
        phone = self.phone_of(msg["to"])
        if phone is None:
            self.metrics.error("bad_contact")
            self._error(msg, "cancel", "jid-malformed", "not a phone number: " + msg["to"].user)
            return
        sender = msg["from"]
        name = sender.user if sender.domain == self.user_domain else sender.bare
        text = commands.chat_sms(name, body)
        if text is None:
            self.metrics.error("chat_too_long")
            self._error(
                msg, "modify", "not-acceptable", f"too long: more than {commands.MAX_PARTS} SMS"
            )
            return
        self.metrics.chats.inc()
        self.store.set_last_peer(phone, sender.bare)
        # One message however long: the buffer server sends it as a concatenated SMS.
        self.take_chat(phone, text, str(sender), msg["id"] or None, bool(msg["request_receipt"]))

    def take_chat(
        self, phone: str, text: str, from_jid: str, msg_id: Optional[str], want_receipt: bool
    ) -> None:
        """A PC user's chat, checked, on its way to the phone: into the outbox."""
        self.store.outbox_put(
            self.sms_number,
            phone,
            text,
            from_jid=from_jid,
            msg_id=msg_id,
            want_receipt=want_receipt,
        )
        self.pump_outbox()

    def serves(self, link: Optional[str]) -> bool:
        """This gateway drives `link` (one gateway alone drives them all)."""
        return True

    def _reply(self, msg: Message, text: str) -> None:
        self.send_message(mto=msg["from"], mfrom=msg["to"], mbody=text, mtype="chat")

    def _error(self, msg: Message, etype: str, condition: str, text: str) -> None:
        err = self.make_message(mto=msg["from"], mfrom=msg["to"], mtype="error")
        if msg["id"]:
            err["id"] = msg["id"]
        err["error"]["type"] = etype
        err["error"]["condition"] = condition
        err["error"]["text"] = text
        err.send()

    def _sms_gone(self, what: str) -> None:
        if not self.sms_closed:
            self.sms_closed = True
            log.warning("the smslink endpoint is closed; %s (queued SMS wait for the next run)", what)
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None

    def pump_outbox(self) -> None:
        """Hand queued MT to the communication buffer, oldest first; a full ring holds
        back only the messages for its own link. A closed endpoint stops it."""
        if self.sms_closed:
            return
        blocked: set[Optional[str]] = set()
        held = 0
        for item in self.store.outbox_queued():
            link = self.route(item.phone)
            if not self.serves(link):
                continue
            if link in blocked:
                held += 1
                continue
            try:
                receipt = self.sms.send(item.sender, item.phone, item.text, item.ref)
            except RingFull:
                blocked.add(link)
                held += 1
                continue
            except EndpointClosed:
                self._sms_gone("nothing more is sent")
                return
            except SendFailed as e:
                self.metrics.error("send_refused")
                log.warning("SMS %d to %s refused: %r", item.ref, item.phone, e.__cause__ or e)
                self.store.outbox_done(item.ref)
                self._report_failure(item, "cancel", "item-not-found", f"cannot send the SMS: {e}")
                continue
            self.store.outbox_sent(item.ref, receipt.link, receipt.seq)
            self.metrics.sms_out.labels(receipt.link).inc()
        self.metrics.outbox_waiting.set(held)
        if held:
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry_handle is None and not self._stopping and not self.sms_closed:
            self._retry_handle = asyncio.get_running_loop().call_later(
                self.retry_interval, self._retry
            )

    def _retry(self) -> None:
        self._retry_handle = None
        acks, self._pending_acks = self._pending_acks, []
        for link, seq in acks:
            self._ack(link, seq)
        self.pump_outbox()

    def _ack(self, link: str, seq: int) -> None:
        try:
            self.sms.ack(link, seq)
        except AckLater:
            self._pending_acks.append((link, seq))
            self._schedule_retry()
        except EndpointClosed:
            # Stored already; unacknowledged, the buffer server keeps it and sends it
            # to the next run again (handled twice then, never lost).
            self._sms_gone("SMS are no longer acknowledged")

    def _report_failure(self, item: OutboxItem, etype: str, condition: str, text: str) -> None:
        if item.from_jid is None:
            log.warning("SMS to %s failed: %s", item.phone, text)
            return
        if not self.online:
            log.warning("SMS to %s failed while XMPP is down: %s", item.phone, text)
            return
        err = self.make_message(mto=item.from_jid, mfrom=self.phone_jid(item.phone), mtype="error")
        if item.msg_id:
            err["id"] = item.msg_id
        # The original body, as RFC 6120 allows, so the user sees which message failed.
        err["body"] = item.text.split(": ", 1)[-1]  # without the "alice: " prefix
        err["error"]["type"] = etype
        err["error"]["condition"] = condition
        err["error"]["text"] = text
        err.send()

    # -- communication buffer events ---------------------------------------------------

    def on_sms_event(self, ev: Event) -> None:
        if isinstance(ev, SmsIn):
            # Stored before acknowledged: once the peer hears the ack it may forget it.
            text = f"{ev.text} {PART_MISSING}" if ev.incomplete else ev.text
            self.store.inbox_put(ev.link, ev.seq, ev.sender, ev.recipient, text)
            self._ack(ev.link, ev.seq)
            self.metrics.sms_in.labels(ev.link).inc()
            self.process_inbox()
        elif isinstance(ev, SmsStatus):
            self._on_status(ev)
        elif isinstance(ev, SmsReport):
            self._on_report(ev)
        elif isinstance(ev, (LinkUp, LinkDown)):
            up = isinstance(ev, LinkUp)
            log.info("link %s %s", ev.link, "up" if up else "down")
            self.link_up[ev.link] = up
            self.metrics.link_up.labels(ev.link).set(1 if up else 0)
            pending = self._down_timers.pop(ev.link, None)
            if pending is not None:
                pending.cancel()
            if up:
                self._show_link(ev.link, True)
                self.pump_outbox()
            elif self.link_shown_up.get(ev.link, False):
                self._down_timers[ev.link] = asyncio.get_running_loop().call_later(
                    self.down_grace, self._show_link, ev.link, False
                )

    def _show_link(self, link: str, up: bool) -> None:
        self._down_timers.pop(link, None)
        if self.link_shown_up.get(link, False) == up:
            return
        self.link_shown_up[link] = up
        if self.online:
            for phone, jid in self.store.watchers():
                if self.route(phone) == link:
                    self._send_phone_presence(phone, jid)

    def _on_status(self, ev: SmsStatus) -> None:
        if not ev.final:
            return
        item = self.store.outbox_get(ev.client_ref) if ev.client_ref else None
        if item is None or (item.link, item.seq) != (ev.link, ev.seq):
            return  # not ours, or a status we already handled
        self.store.outbox_done(item.ref)
        if ev.accepted:
            # The SMSC has it; the receipt waits for the phone (the delivery report).
            self.store.await_report(item)
        else:
            self.metrics.error("smsc_rejected")
            code = ev.error_code or 0
            condition = "not-acceptable" if 300 <= code < 400 else "undefined-condition"
            self._report_failure(item, "cancel", condition, commands.smsc_error_text(code))
        self.pump_outbox()

    def _on_report(self, ev: SmsReport) -> None:
        """The phone has the chat (an XEP-0184 receipt, when the client asked for
        one), or it never will (an error stanza with the reason)."""
        if ev.state == "enroute":
            return  # the SMSC keeps trying; the final report follows
        if not ev.client_ref:
            return
        item = self.store.awaiting_report(ev.client_ref)
        if item is None:
            # A report may overtake the SMSC's acceptance on its way here: it says
            # the SMSC took the SMS, so the chat's wait for a final status ends too.
            sent = self.store.outbox_get(ev.client_ref)
            if sent is None or sent.link is None or sent.from_jid is None:
                log.debug("report on SMS %d: no chat waits for it", ev.client_ref)
                return
            self.store.outbox_done(sent.ref)
            item = sent
        if ev.state == "delivered":
            if item.want_receipt and item.from_jid and item.msg_id:
                if not self.online:
                    log.warning("receipt for %s lost: XMPP is down", item.from_jid)
                    self.store.report_done(item.ref)
                    return
                ack = self.make_message(mto=item.from_jid, mfrom=self.phone_jid(item.phone))
                ack["receipt"] = item.msg_id
                ack.send()
        else:
            self.metrics.error("sms_undelivered")
            if ev.state == "expired":
                why = "the phone was not reachable before the SMS expired"
            else:
                why = "the SMS could not be delivered to the phone"
            if ev.error_code:
                why += f" (error {ev.error_code})"
            self._report_failure(item, "cancel", "recipient-unavailable", why)
        self.store.report_done(item.ref)

    # -- phone -> XMPP -----------------------------------------------------------------------

    def process_inbox(self) -> None:
        if not self.online:
            return  # stored; handled once the XMPP server is back
        for item in self.store.inbox():
            if not self.serves(item.link) or item.id in self.inbox_in_flight:
                continue
            try:
                self.handle_sms(item)
            except Exception:
                self.metrics.error("internal")
                log.exception("handling SMS %s/%s", item.link, item.seq)
            self.inbox_handled(item)

    def inbox_handled(self, item: InboxItem) -> None:
        """What an SMS became has been sent: it leaves the inbox."""
        self.store.inbox_done(item.id)

    def _sms_reply(self, phone: str, text: str) -> None:
        self.store.outbox_put(self.sms_number, phone, commands.fit_sms(text))
        self.pump_outbox()

    def handle_sms(self, item: InboxItem) -> None:
        phone = normalize_phone(item.sender)
        if phone is None:
            self.metrics.error("bad_sender")
            log.warning("SMS from unusable number %r dropped", item.sender)
            return
        me = self.phone_jid(phone)
        cmd = commands.parse(item.text)
        if isinstance(cmd, commands.Who):
            online: list[tuple[str, Optional[str]]] = []
            offline: list[str] = []
            for b in self.store.buddies(phone):
                show = self.buddy_show(phone, b.jid)
                if show is None:
                    offline.append(b.name if b.subscribed else f"{b.name} (pending)")
                else:
                    online.append((b.name, show or None))
            self._sms_reply(phone, commands.who_text(online, offline))
        elif isinstance(cmd, commands.Msg):
            target = self.resolve_buddy(phone, cmd.name)
            if target is None:
                self._sms_reply(phone, f"Unknown name {cmd.name}.")
                return
            jid = target[0]
            before = self.store.last_peer(phone)
            chat_id = self._chat_from_phone(phone, jid, cmd.text, self.mo_stanza_id(item))
            self.store.set_last_peer(phone, jid)
            self._msg_sent[chat_id] = (phone, jid, before)
            while len(self._msg_sent) > MAX_REMEMBERED:
                del self._msg_sent[next(iter(self._msg_sent))]
        elif isinstance(cmd, commands.Add):
            target = self.resolve_buddy(phone, cmd.name)
            if target is None:
                self._sms_reply(phone, f"Unknown name {cmd.name}.")
                return
            jid, name = target
            new = self.store.add_buddy(phone, jid, name)
            # No probe here: before the buddy approves, the server would answer it
            # with "unsubscribed". Approval brings the buddy's presence anyway.
            self.send_presence(pfrom=me, pto=jid, ptype="subscribe")
            if new:
                self._sms_reply(phone, f"Added {name}; asked {jid} to share presence. WHO lists who is online.")
            else:
                self._sms_reply(phone, f"{name} is already a buddy.")
        elif isinstance(cmd, commands.Remove):
            gone = self.store.buddy_by_name(phone, cmd.name)
            if gone is None:
                self._sms_reply(phone, f"{cmd.name} is not a buddy.")
                return
            self.store.remove_buddy(phone, gone.jid)
            self.buddy_presence.get(phone, {}).pop(gone.jid, None)
            self._count_users_online()
            self.send_presence(pfrom=me, pto=gone.jid, ptype="unsubscribe")
            self._sms_reply(phone, f"Removed {gone.name}.")
        elif isinstance(cmd, commands.Malformed):
            self._sms_reply(phone, f"Usage: {cmd.usage}")
        elif isinstance(cmd, commands.Help):
            self._sms_reply(phone, commands.HELP_TEXT)
        else:
            peer = self.store.last_peer(phone)
            if peer is None:
                self._sms_reply(phone, commands.HELP_TEXT)
            else:
                self._chat_from_phone(phone, peer, cmd.text, self.mo_stanza_id(item))

    def mo_stanza_id(self, item: InboxItem) -> str:
        """The id of the chat an SMS becomes: a fresh one (without a journal an
        SMS's seq is not unique across runs)."""
        return str(self.new_id())

    def _chat_from_phone(self, phone: str, jid: str, text: str, chat_id: str) -> str:
        """Send an SMS's text as a chat from the phone's contact; its stanza id.
        A buddy known to be offline gets it later from the server's offline
        storage, and the phone is told so."""
        msg = self.make_message(mto=JID(jid), mfrom=self.phone_jid(phone), mbody=text, mtype="chat")
        msg["id"] = chat_id
        msg.send()
        buddy = self.store.buddy(phone, jid)
        if buddy is not None and buddy.subscribed and self.buddy_show(phone, jid) is None:
            self._sms_reply(phone, f"{buddy.name} is offline; the message waits.")
        return chat_id

    def _on_message_error(self, msg: Message) -> None:
        """A chat from a phone could not be delivered: tell the phone by SMS, in
        words, and keep the reply target it had before a failed `MSG`."""
        phone = self.phone_of(msg["to"])
        if phone is None:
            return
        self.metrics.error("chat_undelivered")
        jid = msg["from"].bare
        sent = self._msg_sent.pop(msg["id"], None)
        if sent is not None and sent[0] == phone and self.store.last_peer(phone) == sent[1]:
            self.store.set_last_peer(phone, sent[2])
        buddy = self.store.buddy(phone, jid)
        who = buddy.name if buddy is not None else (JID(jid).user or jid)
        condition, text = stanza_error(msg)
        self._sms_reply(phone, undelivered_text(who, condition, text))

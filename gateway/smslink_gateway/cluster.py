"""Several gateway instances on one XMPP cluster (docs/multi-node.md).

Every instance connects as the same component to the XMPP node on its machine
(ejabberd routes a stanza to an instance on the sender's node). Each buffer
server's link is driven by exactly one instance at a time, the one holding the
link's lease in Redis (`lease:<link>`, with a fencing token); an instance runs one
`smslink.Endpoint` per link it holds, opened on the link's journal directory, so
that a new holder keeps the link's epoch and resynchronises with the buffer server
as after a cut. A chat reaching an instance that does not hold its link hops to
the holder through the Redis stream `mt:<link>` (consumer group `holder`): every
chat takes that path, so there is one way to the phone. Inbox, outbox and buddy
lists are one SQLite store shared by the instances (one machine; see the design
for the Redis form).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, AsyncIterator, Callable, Optional

import redis.asyncio as aioredis
import smslink
from redis.exceptions import RedisError, ResponseError
from slixmpp.exceptions import IqError

from .component import Gateway
from .events import EndpointAdapter, Event, LinkDown, LinkUp, Receipt, RingFull
from .store import InboxItem

log = logging.getLogger("smslink_gateway.cluster")

# SET NX PX and the fencing token in one step. The token is Redis's clock in ms,
# never below the last token + 1: it keeps growing even if `gen:` were lost with a
# Redis restart, since a lease is only granted once the previous one expired.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1])} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gen = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0') + 1)
redis.call('SET', KEYS[2], gen)
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. gen, 'PX', ARGV[2])
return {1, gen}
"""
# All of an instance's leases in one call: 1 for each renewed, 0 for each lost.
_RENEW = """
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[i + 1] then
    redis.call('PEXPIRE', k, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_GROUP = "holder"


class Leases:
    """The Redis side of link ownership: a lease per link, and which instances are
    alive (`inst:<name>` keys that expire with the lease TTL)."""

    def __init__(self, r: "aioredis.Redis", instance: str, ttl: float) -> None:
        self.r = r
        self.instance = instance
        self.ttl_ms = int(ttl * 1000)
        self._acquire = r.register_script(_ACQUIRE)
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)

    async def acquire(self, link: str) -> tuple[Optional[str], float]:
        """(token, 0) when the lease is ours now; else (None, seconds it has left)."""
        ok, v = await self._acquire(
            keys=[f"lease:{link}", f"gen:{link}"], args=[self.instance, self.ttl_ms]
        )
        if int(ok) == 1:
            return f"{self.instance}:{int(v)}", 0.0
        return None, max(int(v), 1) / 1000

    async def renew(self, tokens: dict[str, str]) -> dict[str, bool]:
        """Renew these leases (link -> token) and say this instance is alive."""
        await self.r.set(f"inst:{self.instance}", "1", px=self.ttl_ms)
        if not tokens:
            return {}
        links = list(tokens)
        out = await self._renew(
            keys=[f"lease:{link}" for link in links],
            args=[self.ttl_ms, *(tokens[link] for link in links)],
        )
        return {link: int(v) == 1 for link, v in zip(links, out)}

    async def release(self, link: str, token: str) -> None:
        await self._release(keys=[f"lease:{link}"], args=[token])

    async def live_instances(self) -> int:
        return len([k async for k in self.r.scan_iter(match="inst:*", count=1000)])

    async def holder(self, link: str) -> Optional[str]:
        """The instance holding `link`'s lease (None: nobody)."""
        v = await self.r.get(f"lease:{link}")
        if v is None:
            return None
        return (v.decode() if isinstance(v, bytes) else str(v)).rsplit(":", 1)[0]


class HeldLinks:
    """The gateway's communication buffer made of the links this instance holds,
    one `smslink.Endpoint` each; links come and go as leases do. MT for a link
    held elsewhere is not sent here (`RingFull`: it waits)."""

    def __init__(self) -> None:
        #: Which link serves a number: the gateway's table, the same on every instance.
        self.router: Callable[[str], Optional[str]] = lambda _: None
        self.adapters: dict[str, EndpointAdapter] = {}
        self._forwarders: dict[str, asyncio.Task[None]] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue()

    def add(self, link: str, endpoint: smslink.Endpoint) -> EndpointAdapter:
        adapter = EndpointAdapter(endpoint)
        self.adapters[link] = adapter
        self._forwarders[link] = asyncio.get_running_loop().create_task(self._forward(adapter))
        return adapter

    async def _forward(self, adapter: EndpointAdapter) -> None:
        async for ev in adapter.events():
            self._events.put_nowait(ev)

    async def remove(self, link: str, flush_timeout: float) -> None:
        """Stop driving `link`: its endpoint closes (and its journal with it)."""
        adapter = self.adapters.pop(link, None)
        task = self._forwarders.pop(link, None)
        if task is not None:
            task.cancel()
        if adapter is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, adapter.endpoint.close, flush_timeout
            )
            self._events.put_nowait(LinkDown(link))

    def send(self, sender: str, recipient: str, text: str, client_ref: int) -> Receipt:
        link = self.route(recipient)
        adapter = self.adapters.get(link) if link is not None else None
        if adapter is None:
            raise RingFull(f"link {link} is not held here")
        return adapter.send(sender, recipient, text, client_ref)

    def route(self, recipient: str) -> Optional[str]:
        return self.router(recipient)

    def ack(self, link: str, seq: int) -> None:
        adapter = self.adapters.get(link)
        if adapter is not None:
            adapter.ack(link, seq)
        # Else the link moved on: unacknowledged, the MO comes to its new holder
        # again, under the same seq (the journal moved too), and is recognised.

    def restored(self) -> set[int]:
        return set()  # per link, when a link is taken

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self._events.get()


class ClusterGateway(Gateway):
    """A gateway instance among several. `links`: every link of the deployment
    (name -> prefixes, as routes); `make_endpoint(link)`: the endpoint for one link,
    on that link's journal directory (reachable from every instance); `redis`: the
    coordination server; `instance`: this instance's name (unique); `lease_ttl`:
    seconds a holder that stopped renewing keeps its links. Other options as for
    `Gateway`."""

    def __init__(
        self,
        *args: object,
        make_endpoint: Callable[[str], smslink.Endpoint],
        redis: "aioredis.Redis",
        instance: str,
        lease_ttl: float = 5.0,
        **kwargs: object,
    ) -> None:
        self.held = HeldLinks()
        super().__init__(*args, endpoint=self.held, **kwargs)  # type: ignore[arg-type]
        assert self.routes is not None, "a cluster gateway needs its routes"
        self.held.router = self.route
        self.links = sorted({r.link for r in self.routes})
        self.make_endpoint = make_endpoint
        self.redis = redis
        self.instance = instance
        self.lease_ttl = lease_ttl
        self.leases = Leases(redis, instance, lease_ttl)
        self.tokens: dict[str, str] = {}  # link -> fencing token, in order taken
        # Per held link, the moment it stops unless renewed before (self-fencing).
        self._fences: dict[str, asyncio.TimerHandle] = {}
        self._next_try: dict[str, float] = {}
        self._hop_out: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._barrier: Optional[asyncio.Task[None]] = None
        #: link -> time.monotonic() when this instance last took its lease, and when
        #: the link was last up here (for hand-over figures).
        self.taken_at: dict[str, float] = {}
        self.up_at: dict[str, float] = {}
        #: link -> (tx, rx) seq its journal gave back when this instance took it.
        self.resumed: dict[str, tuple[int, int]] = {}

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self.start_coordination()

    def start_coordination(self) -> None:
        """The lease loop and the hop writer (`start` runs them with the rest)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run_leases()), loop.create_task(self._send_hops())]

    async def stop(self) -> None:
        # Chats taken from the server go to their holder before this instance goes.
        try:
            await asyncio.wait_for(self._hop_out.join(), 2 * self.retry_interval + 1)
        except asyncio.TimeoutError:
            log.warning("%d chats not handed over at stop", self._hop_out.qsize())
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for link in list(self.tokens):
            await self._drop_link(link, "stopping", release=True)
        if self._barrier is not None:
            await asyncio.wait([self._barrier], timeout=2 * self.retry_interval + 1)
        try:
            # The others count one instance less at once, not after the TTL.
            await self.redis.delete(f"inst:{self.instance}")
        except (RedisError, OSError) as e:
            log.warning("redis: %s", e)
        await super().stop()

    def requeue_unfinished(self) -> None:
        pass  # per link, when this instance takes it (`_take_link`)

    def serves(self, link: Optional[str]) -> bool:
        # A chat no link serves is refused by whichever instance has it.
        return link is None or link in self.held.adapters

    def on_sms_event(self, ev: Event) -> None:
        if isinstance(ev, LinkUp):
            self.up_at[ev.link] = time.monotonic()
        if isinstance(ev, LinkDown) and not self.serves(ev.link):
            # Given up here: its next holder tells the watchers how it is.
            self.link_up[ev.link] = False
            self.metrics.link_up.labels(ev.link).set(0)
            timer = self._down_timers.pop(ev.link, None)
            if timer is not None:
                timer.cancel()
            return
        super().on_sms_event(ev)

    def inbox_handled(self, item: InboxItem) -> None:
        # The stanzas may still sit in this process or its socket: if it died now
        # they would be lost with the row gone. The row goes once the server has
        # answered an IQ sent after them (it reads a component's stream in order);
        # until then a next holder would send them again, under the same ids.
        self.inbox_in_flight.add(item.id)
        if self._barrier is None or self._barrier.done():
            self._barrier = asyncio.get_running_loop().create_task(self._confirm_inbox())

    async def _confirm_inbox(self) -> None:
        while self.inbox_in_flight:
            sent = set(self.inbox_in_flight)
            iq = self.make_iq_get(
                queryxmlns="urn:xmpp:ping", ito=self.user_domain, ifrom=self.boundjid.bare
            )
            try:
                await iq.send(timeout=10)  # type: ignore[no-untyped-call]
            except IqError:
                pass  # an error answer shows as well that the server read what came before
            except Exception as e:  # IqTimeout, or the stream closed
                # Not known to have arrived: handled again (same ids) on reconnection.
                log.warning("inbox barrier: %r; %d SMS will be sent again", e, len(sent))
                self.inbox_in_flight -= sent
                return
            for item_id in sent:
                self.store.inbox_done(item_id)
            self.inbox_in_flight -= sent

    def mo_stanza_id(self, item: InboxItem) -> str:
        # The link's journal moves with it, so its seqs never repeat: a holder that
        # sends an SMS again after the last one died uses the same id.
        return f"sms-{item.link}-{item.seq}"

    # -- the lease loop ------------------------------------------------------------

    async def _run_leases(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.lease_ttl / 10
        next_renew = 0.0
        # Not only cancellation ends it: the Redis client sometimes swallows one.
        while not self._stopping:
            try:
                now = loop.time()
                if now >= next_renew:
                    next_renew = now + self.lease_ttl / 3
                    renewed = await self.leases.renew(dict(self.tokens))
                    for link, ok in renewed.items():
                        if ok:
                            self._arm_fence(link, now)
                        elif link in self.tokens:
                            await self._drop_link(link, "the lease went to another instance")
                await self._place(loop.time())
                await self._share_link_states()
            except (RedisError, OSError) as e:
                log.warning("redis: %s", e)
            await asyncio.sleep(tick)

    async def _share_link_states(self) -> None:
        """Publish how the held links are shown (`up:<link>`, gone with the holder)
        and learn the others', so that any instance answers a probe alike."""
        pipe = self.redis.pipeline(transaction=False)
        for link in self.tokens:
            up = "1" if self.link_shown_up.get(link, False) else "0"
            pipe.set(f"up:{link}", up, px=int(self.lease_ttl * 1000))
        others = [link for link in self.links if link not in self.tokens]
        if others:
            pipe.mget([f"up:{link}" for link in others])
        out = await pipe.execute()
        if others:
            for link, v in zip(others, out[-1]):
                self.link_shown_up[link] = v == b"1"

    def _arm_fence(self, link: str, renew_started: float) -> None:
        """The lease was set or renewed by a call sent at `renew_started`: it holds
        at least a TTL from then. The link stops at 90 % of that, on a timer of its
        own, so that a Redis call that hangs cannot delay it."""
        loop = asyncio.get_running_loop()
        old = self._fences.pop(link, None)
        if old is not None:
            old.cancel()
        self._fences[link] = loop.call_at(
            renew_started + self.lease_ttl * 0.9, self._fence_expired, link
        )

    def _fence_expired(self, link: str) -> None:
        self._fences.pop(link, None)
        if link in self.tokens:
            asyncio.get_running_loop().create_task(
                self._drop_link(link, "the lease was not renewed in time")
            )

    async def _place(self, now: float) -> None:
        """Hold this instance's share of the links: take free ones below it, give
        back the last taken above it."""
        live = max(await self.leases.live_instances(), 1)
        share = math.ceil(len(self.links) / live)
        if len(self.tokens) > share:
            link = list(self.tokens)[-1]
            await self._drop_link(link, f"{live} instances share the links", release=True)
            return
        for link in self.links:
            if len(self.tokens) >= share:
                return
            if link in self.tokens or self._next_try.get(link, 0.0) > now:
                continue
            token, left = await self.leases.acquire(link)
            if token is None:
                self._next_try[link] = now + min(left, self.lease_ttl / 10)
                continue
            if self._stopping:
                await self.leases.release(link, token)
                return
            self.tokens[link] = token
            self._arm_fence(link, now)
            try:
                self._take_link(link)
            except Exception:
                log.exception("taking link %s", link)
                await self._drop_link(link, "it could not be taken", release=True)
                self._next_try[link] = now + self.lease_ttl

    def _take_link(self, link: str) -> None:
        """Start driving `link` on its journal: what the last holder left in the
        shared outbox is sorted out, then the link's hop stream is consumed."""
        self.taken_at[link] = time.monotonic()
        endpoint = self.make_endpoint(link)
        adapter = self.held.add(link, endpoint)
        log.info("holding link %s (%s)", link, self.tokens[link])
        restored = adapter.restored_seqs()
        stats = endpoint.link_stats(link)
        self.resumed[link] = (stats.tx.retrieved, stats.rx.stored)
        log.info("link %s resumes at tx seq %d, rx seq %d", link, *self.resumed[link])
        # An MT sent on the link whose seq the journal knows but did not give back
        # was processed (its final status died with the last holder): taken as
        # accepted, it waits for its report (a refusal's error stanza is lost). One
        # above what the journal knows never left (no DATA leaves before its record
        # is durable): it goes again.
        known = stats.tx.retrieved
        for item in self.store.outbox_sent_on(link):
            if item.ref not in restored and item.seq is not None and item.seq <= known:
                self.store.outbox_done(item.ref)
                self.store.await_report(item)
        self.store.outbox_requeue_unfinished(frozenset(restored), link=link)
        for item in self.store.outbox_queued():
            if item.ref in restored:
                self.store.outbox_sent(item.ref, link, restored[item.ref])
        self._consumers[link] = asyncio.get_running_loop().create_task(self._consume_hops(link))
        self.process_inbox()
        self.pump_outbox()

    async def _drop_link(self, link: str, why: str, release: bool = False) -> None:
        token = self.tokens.pop(link, None)
        if token is None:
            return
        log.warning("giving up link %s: %s", link, why)
        fence = self._fences.pop(link, None)
        if fence is not None:
            fence.cancel()
        consumer = self._consumers.pop(link, None)
        if consumer is not None:
            consumer.cancel()
        # An orderly release lets the ring's last acknowledgements out; a lease
        # that may be gone already allows no more writes at all.
        await self.held.remove(link, 1.0 if release else 0.0)
        self.link_up[link] = False
        if release:
            try:
                await self.leases.release(link, token)
            except (RedisError, OSError) as e:
                log.warning("releasing link %s: %s", link, e)
        self._next_try[link] = asyncio.get_running_loop().time() + self.lease_ttl / 10

    # -- chats hop to the link's holder ----------------------------------------------

    def take_chat(
        self, phone: str, text: str, from_jid: str, msg_id: Optional[str], want_receipt: bool
    ) -> None:
        link = self.route(phone)
        if link is None:
            super().take_chat(phone, text, from_jid, msg_id, want_receipt)
            return
        hop = {
            "link": link,
            "phone": phone,
            "text": text,
            "from": from_jid,
            "id": msg_id or "",
            "receipt": "1" if want_receipt else "",
        }
        self._hop_out.put_nowait(hop)

    async def _send_hops(self) -> None:
        """One writer, so that a user's chats keep their order."""
        while not self._stopping:
            hops = [await self._hop_out.get()]
            while not self._hop_out.empty():
                hops.append(self._hop_out.get_nowait())
            while True:
                try:
                    pipe = self.redis.pipeline(transaction=False)
                    for hop in hops:
                        pipe.xadd(f"mt:{hop['link']}", hop)  # type: ignore[arg-type]
                    await pipe.execute()
                    break
                except (RedisError, OSError) as e:
                    log.warning("redis: %s; retrying %d chats", e, len(hops))
                    await asyncio.sleep(self.retry_interval)
            for _ in hops:
                self._hop_out.task_done()

    async def _consume_hops(self, link: str) -> None:
        """Take the chats for `link` from its stream while this instance holds it.
        Ownership is checked before each batch is taken, not only by cancelling this
        task: a cancellation a Redis client swallows must not leave a consumer
        behind that takes chats for a link held elsewhere."""
        token = self.tokens.get(link)
        stream = f"mt:{link}"
        # Within the client's reply timeout (a third of the TTL).
        block_ms = max(10, int(self.lease_ttl * 1000 / 10))
        loop = asyncio.get_running_loop()
        try:
            try:
                await self.redis.xgroup_create(stream, _GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            # First everything earlier holders took and never acknowledged; later,
            # each TTL, what a consumer that lost the link meanwhile was handed.
            idle_ms, next_claim = 0, 0.0
            while token is not None and self.tokens.get(link) == token:
                if loop.time() >= next_claim:
                    await self._claim_hops(link, token, stream, idle_ms)
                    idle_ms = int(self.lease_ttl * 1000)
                    next_claim = loop.time() + self.lease_ttl
                got: Any = await self.redis.xreadgroup(
                    _GROUP, self.instance, {stream: ">"}, count=100, block=block_ms
                )
                for _, entries in got or []:
                    await self._take_hops(link, token, stream, entries)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if isinstance(e, (RedisError, OSError)):
                log.warning("reading %s: %s", stream, e)
            else:
                log.exception("reading %s", stream)
            # The lease loop gives the link up when it cannot renew; else try again.
            if token is not None and self.tokens.get(link) == token:
                await asyncio.sleep(self.retry_interval)
                if self.tokens.get(link) == token:
                    self._consumers[link] = loop.create_task(self._consume_hops(link))

    async def _claim_hops(self, link: str, token: str, stream: str, idle_ms: int) -> None:
        start: bytes = b"0-0"
        while True:
            claimed: Any = await self.redis.xautoclaim(
                stream, _GROUP, self.instance, min_idle_time=idle_ms, start_id=start, count=100
            )
            start = claimed[0]
            await self._take_hops(link, token, stream, claimed[1])
            if start == b"0-0":
                return

    async def _take_hops(
        self, link: str, token: str, stream: str, entries: list[tuple[bytes, dict[bytes, bytes]]]
    ) -> None:
        if self.tokens.get(link) != token:
            return  # left pending: the link's holder claims them
        done = []
        for entry_id, raw in entries:
            if raw is None:
                continue  # deleted meanwhile
            f = {k.decode(): v.decode() for k, v in raw.items()}
            hop_id = f"{stream}/{entry_id.decode()}"
            self.store.outbox_put_hopped(
                hop_id,
                self.sms_number,
                f["phone"],
                f["text"],
                from_jid=f["from"],
                msg_id=f["id"] or None,
                want_receipt=bool(f["receipt"]),
            )
            done.append((entry_id, hop_id))
        if not done:
            return
        self.pump_outbox()
        ids = [e for e, _ in done]
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(stream, _GROUP, *ids)
        pipe.xdel(stream, *ids)
        await pipe.execute()
        self.store.hops_done([h for _, h in done])

"""Two IM nodes (docs/multi-node.md, "The proof in the normal test run"): two
ejabberd nodes in one cluster, one Redis, two gateway instances (G1 in this
process on node 1, G2 a process on node 2), two buffer servers (`au` +61 and `nz`
+64) with their SMSC simulators. Each link is driven by the instance holding its
lease; chats hop to it; killing G2 moves `nz` to G1 with its journal and nothing
is lost or doubled."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis.asyncio as aioredis
import smslink
import smslink.testing

from cluster_harness import EjabberdCluster, RedisServer, start_ejabberd_cluster, start_redis
from smslink_gateway import Store
from smslink_gateway.cluster import ClusterGateway, Leases
from smslink_gateway.component import Route
from xmpp_harness import COMPONENT, SECRET, PcUser, free_port, show_of, wait_until

PSK = b"multi-node-test-key"
GATEWAY_NUMBER = "12345"
LINKS = {"au": "+61", "nz": "+64"}
AU_PHONE, NZ_PHONE = "+61400000001", "+64210000001"
AU_JID, NZ_JID = f"{AU_PHONE}@{COMPONENT}", f"{NZ_PHONE}@{COMPONENT}"
TTL = 1.0  # seconds: a link moves about this long after its holder died
# The traffic G2 is killed in: every INTERVAL seconds a chat from each user and an
# SMS from +64, ROUNDS times, the kill before round KILL_AT. The environment may
# change them for a harder run (e.g. 0.005, 300, 150).
INTERVAL = float(os.environ.get("SMSLINK_MULTI_NODE_INTERVAL", "0.05"))
ROUNDS = int(os.environ.get("SMSLINK_MULTI_NODE_ROUNDS", "60"))
KILL_AT = int(os.environ.get("SMSLINK_MULTI_NODE_KILL_AT", "20"))


@dataclass
class BufferServer:
    """A buffer server (an `Endpoint` with an SMSC) and its SMSC simulator."""

    sim: Any
    endpoint: Any
    stop: threading.Event
    drainer: threading.Thread

    def accepted_to(self, phone: str) -> list[str]:
        return [s.text for s in self.sim.accepted() if s.recipient == phone]

    def close(self) -> None:
        self.stop.set()
        self.drainer.join(5)
        self.endpoint.close()
        self.sim.stop()


def start_buffer_server(link: str) -> BufferServer:
    sim = smslink.testing.SmscSim(user="smslink", password="secret")
    endpoint = smslink.Endpoint(
        [smslink.Link(link, PSK, listen="127.0.0.1:0", insecure_plaintext=True)],
        smsc=smslink.Smsc(sim.address, "smslink", "secret", status_report_request=14),
        reconnect_min=0.05,
        reconnect_max=0.5,
    )
    stop = threading.Event()

    def drain() -> None:  # its application side only keeps the event queue moving
        while not stop.is_set():
            endpoint.next_event(0.1)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    return BufferServer(sim, endpoint, stop, drainer)


@pytest.fixture
def ejabberd() -> Iterator[EjabberdCluster]:
    c = start_ejabberd_cluster(["alice", "bob"])
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    r = start_redis(tmp_path)
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def buffers() -> Iterator[dict[str, BufferServer]]:
    made: dict[str, BufferServer] = {}
    try:
        for link in LINKS:
            made[link] = start_buffer_server(link)
        yield made
    finally:
        for b in made.values():
            b.close()


def g2_command(
    ejabberd: EjabberdCluster, redis_server: RedisServer, buffers: dict[str, BufferServer], tmp: Path
) -> list[str]:
    psk_file = tmp / "psk"
    psk_file.write_bytes(PSK + b"\n")
    cmd = [
        sys.executable, "-m", "smslink_gateway",
        "--jid", COMPONENT,
        "--server", "127.0.0.1",
        "--port", str(ejabberd.component_ports[1]),
        "--sms-number", GATEWAY_NUMBER,
        "--db", str(tmp / "gateway.db"),
        "--journal-dir", str(tmp / "journals"),
        "--redis", redis_server.url,
        "--instance", "g2",
        "--lease-ttl", str(TTL),
    ]
    for link, prefix in LINKS.items():
        addr = buffers[link].endpoint.local_addr(link)
        cmd += [
            "--link",
            f"name={link},dial={addr},psk-file={psk_file},prefixes={prefix},insecure-plaintext",
        ]
    return cmd + (["-v"] if os.environ.get("GW_DEBUG") else [])


def test_two_nodes_link_moves_when_its_instance_dies(
    ejabberd: EjabberdCluster,
    redis_server: RedisServer,
    buffers: dict[str, BufferServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    au, nz = buffers["au"], buffers["nz"]

    def make_endpoint(link: str) -> smslink.Endpoint:
        return smslink.Endpoint(
            [
                smslink.Link(
                    link,
                    PSK,
                    dial=buffers[link].endpoint.local_addr(link),
                    prefixes=[LINKS[link]],
                    insecure_plaintext=True,
                )
            ],
            journal_dir=str(tmp_path / "journals" / link),
            reconnect_min=0.05,
            reconnect_max=0.5,
        )

    g2: "subprocess.Popen[bytes] | None" = None
    g2_log = tmp_path / "g2.log"

    async def main() -> None:
        nonlocal g2
        r = aioredis.Redis.from_url(redis_server.url, socket_timeout=TTL / 3)
        leases = Leases(r, "test", TTL)
        store = Store(str(tmp_path / "gateway.db"))
        g1 = ClusterGateway(
            COMPONENT,
            SECRET,
            "127.0.0.1",
            ejabberd.component_ports[0],
            store=store,
            sms_number=GATEWAY_NUMBER,
            routes=[Route(link, [prefix]) for link, prefix in LINKS.items()],
            retry_interval=0.05,
            reconnect_interval=0.1,
            make_endpoint=make_endpoint,
            redis=r,
            instance="g1",
            lease_ttl=TTL,
        )
        g1.start()
        users: list[PcUser] = []
        try:
            await wait_until(lambda: g1.online and "au" in g1.tokens, 15, "G1 up, holding au")
            with open(g2_log, "wb") as log_file:
                g2 = subprocess.Popen(
                    g2_command(ejabberd, redis_server, buffers, tmp_path),
                    env={**os.environ, "SMSLINK_GATEWAY_SECRET": SECRET},
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                )
            # G1 alone took both links; with G2 alive it gives one back, and G2 takes it.
            await until_held(leases, {"au": "g1", "nz": "g2"}, 30)
            await wait_until(lambda: g1.serves("au") and not g1.serves("nz"), 10, "G1: au only")
            await wait_until(
                lambda: nz.endpoint.link_stats("nz").up and au.endpoint.link_stats("au").up,
                20,
                "both links up",
            )
            alice = await PcUser("alice", ejabberd.c2s_ports[0]).online()
            users.append(alice)
            bob = await PcUser("bob", ejabberd.c2s_ports[1]).online()
            users.append(bob)
            await scenario(g1, leases, alice, bob)
        finally:
            for user in users:
                await user.close()
            await g1.stop()
            await r.aclose()
            store.close()

    async def scenario(g1: ClusterGateway, leases: Leases, alice: PcUser, bob: PcUser) -> None:
        assert g2 is not None
        # alice (node 1) subscribes to +64: G1 answers for the link G2 holds, from
        # the state G2 publishes.
        alice.send_presence(pto=NZ_JID, ptype="subscribe")
        await wait_until(
            lambda: show_of(alice.last_presence_from(NZ_JID)) == "available", 15, "+64 available"
        )
        # alice (node 1, G1) chats with +64 (held by G2), bob (node 2, G2) with +61
        # (held by G1); both phones answer. Each arrives once, in order.
        for i in range(20):
            alice.chat(NZ_JID, f"a{i}")
            bob.chat(AU_JID, f"b{i}")
        await wait_equal(
            lambda: (nz.accepted_to(NZ_PHONE), au.accepted_to(AU_PHONE)),
            ([f"alice: a{i}" for i in range(20)], [f"bob: b{i}" for i in range(20)]),
            30,
            "the chats at both phones",
        )
        for i in range(20):
            nz.sim.inject_mo(NZ_PHONE, GATEWAY_NUMBER, f"n{i}")
            au.sim.inject_mo(AU_PHONE, GATEWAY_NUMBER, f"u{i}")
        await wait_equal(
            lambda: (alice.bodies_from(NZ_JID), bob.bodies_from(AU_JID)),
            ([f"n{i}" for i in range(20)], [f"u{i}" for i in range(20)]),
            30,
            "the answers at both users",
        )

        # Chats and SMS flowing (every 50 ms); G2 is killed in the middle.
        alice_sent, mo_sent, bob_sent = [], [], []
        bob_times: dict[str, float] = {}
        killed_at = 0.0
        for i in range(ROUNDS):
            if i == KILL_AT:
                g2.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
            alice.chat(NZ_JID, f"k{i}")
            alice_sent.append(f"alice: k{i}")
            nz.sim.inject_mo(NZ_PHONE, GATEWAY_NUMBER, f"m{i}")
            mo_sent.append(f"m{i}")
            bob.chat(AU_JID, f"c{i}")
            bob_sent.append(f"bob: c{i}")
            bob_times[f"bob: c{i}"] = time.monotonic()
            await asyncio.sleep(INTERVAL)
        assert g2.wait(10) == -signal.SIGKILL

        # G1 holds nz and drives it on the journal G2 left: the link keeps its
        # epoch and cursors (the SMS seqs go on, they do not start again at 1).
        await until_held(leases, {"au": "g1", "nz": "g1"}, 10 * TTL)
        await wait_until(lambda: g1.link_up.get("nz"), 10, "nz up at G1")
        taken, moved = g1.taken_at["nz"] - killed_at, g1.up_at["nz"] - killed_at
        print(
            f"\nnz moved to G1: lease taken {taken * 1000:.0f} ms, link up {moved * 1000:.0f} ms "
            f"after G2's SIGKILL (lease TTL {TTL:g} s)"
        )
        print(f"G1 resumed nz at tx seq {g1.resumed['nz'][0]}, rx seq {g1.resumed['nz'][1]}")
        assert g1.resumed["nz"][0] >= 20 and g1.resumed["nz"][1] >= 20, g1.resumed

        # Every chat alice sent reaches the SMSC once, in order (node 1's component
        # never went away).
        await wait_equal(
            lambda: nz.accepted_to(NZ_PHONE)[20:], alice_sent, 30, "alice's chats at +64"
        )
        # Every SMS from +64 reaches alice; a repeat only under the same stanza id.
        expected_mo = [f"n{i}" for i in range(20)] + mo_sent
        await wait_equal(
            lambda: unique_in_order(alice.bodies_from(NZ_JID)),
            expected_mo,
            30,
            "every SMS from +64 at alice",
        )
        ids: dict[str, set[str]] = {}
        for m in alice.messages:
            if m["from"].bare == NZ_JID:
                ids.setdefault(m["body"], set()).add(m["id"])
        assert all(len(v) == 1 for v in ids.values()), ids
        assert len({i for v in ids.values() for i in v}) == len(ids), "an id reused"

        # bob's node lost its component with G2: ejabberd routes to G1 once it has
        # noticed. What G2 had been handed and not yet passed on is lost (XEP-0114
        # has no acknowledgements), only around the kill; nothing twice, in order.
        await wait_until(
            lambda: au.accepted_to(AU_PHONE)[-1:] == bob_sent[-1:], 30, "bob's last chat"
        )
        got = au.accepted_to(AU_PHONE)[20:]
        assert got == [b for b in bob_sent if b in got], got
        lost = [b for b in bob_sent if b not in got]
        assert all(-0.2 < bob_times[b] - killed_at < 0.5 for b in lost), (lost, killed_at)
        when = ", ".join(f"{(bob_times[b] - killed_at) * 1000:+.0f} ms" for b in lost)
        print(f"bob's chats lost with G2: {len(lost)} of {len(bob_sent)} (sent at {when or '-'})")

        await wait_until(lambda: store_empty(g1.store), 20, "outbox and inbox empty")
        assert alice.errors == [] and bob.errors == []

    try:
        asyncio.run(main())
    except BaseException:
        if g2_log.exists():
            print("G2's log:\n" + g2_log.read_text()[-20000:])
        raise
    finally:
        if g2 is not None and g2.poll() is None:
            g2.kill()
            g2.wait(10)
    g2_says = g2_log.read_text()
    assert "Traceback" not in g2_says and " ERROR " not in g2_says, g2_says
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def until_held(leases: Leases, want: dict[str, str], timeout: float) -> None:
    async def held() -> dict[str, str | None]:
        return {link: await leases.holder(link) for link in want}

    end = asyncio.get_running_loop().time() + timeout
    while (now := await held()) != want:
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"leases {now}, wanted {want}")
        await asyncio.sleep(0.02)


async def wait_equal(get: Callable[[], Any], want: Any, timeout: float, what: str) -> None:
    """Until `get()` equals `want`; on timeout the assertion shows both."""
    try:
        await wait_until(lambda: get() == want, timeout, what)
    except AssertionError:
        assert get() == want, what
        raise


def unique_in_order(xs: list[str]) -> list[str]:
    return list(dict.fromkeys(xs))


def store_empty(store: Store) -> bool:
    return store.outbox_count() == 0 and store.inbox() == []




def test_lease_holder_stops_its_link_before_the_lease_can_pass(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Self-fencing: while the holder renews, nobody else gets the lease; when its
    renewals stop getting through (Redis frozen), it stops the link within 90 % of
    the TTL from its last renewal, so before the lease can expire; the next holder
    gets a higher fencing token. No XMPP server: only the lease loop runs."""
    ttl = 2.0
    dead_end = f"127.0.0.1:{free_port()}"  # the link dials nobody: only ownership counts

    def make_endpoint(link: str) -> smslink.Endpoint:
        return smslink.Endpoint(
            [smslink.Link(link, PSK, dial=dead_end, prefixes=["+61"], insecure_plaintext=True)],
            journal_dir=str(tmp_path / "journals" / link),
        )

    def gen(token: str) -> int:
        return int(token.rsplit(":", 1)[1])

    async def main() -> None:
        r = aioredis.Redis.from_url(redis_server.url, socket_timeout=ttl / 3)
        other = aioredis.Redis.from_url(redis_server.url, socket_timeout=ttl / 3)
        contender = Leases(other, "g2", ttl)
        store = Store(str(tmp_path / "gateway.db"))
        gw = ClusterGateway(
            COMPONENT,
            SECRET,
            "127.0.0.1",
            free_port(),
            store=store,
            sms_number=GATEWAY_NUMBER,
            routes=[Route("au", ["+61"])],
            make_endpoint=make_endpoint,
            redis=r,
            instance="g1",
            lease_ttl=ttl,
        )
        gw.start_coordination()
        proc = redis_server.proc
        assert proc is not None
        try:
            await wait_until(lambda: gw.serves("au"), 10, "au taken")
            first = gen(gw.tokens["au"])
            # Held across several renewals: a contender is refused each time.
            end = asyncio.get_running_loop().time() + 2 * ttl
            while asyncio.get_running_loop().time() < end:
                token, left = await contender.acquire("au")
                assert token is None and 0 < left <= ttl
                await asyncio.sleep(ttl / 10)
            proc.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                await wait_until(lambda: not gw.serves("au"), 2 * ttl, "au given up")
                stopped_after = time.monotonic() - frozen_at
            finally:
                proc.send_signal(signal.SIGCONT)
            # The last renewal was sent before the freeze, so the lease lives at
            # least a TTL after the freeze: the link stopped before that.
            assert stopped_after < ttl, stopped_after
            token, _ = await contender.acquire("au")
            while token is None:
                await asyncio.sleep(ttl / 10)
                token, _ = await contender.acquire("au")
            assert gen(token) > first
            assert not gw.serves("au")  # the contender's now
        finally:
            await gw.stop()
            await r.aclose()
            await other.aclose()
            store.close()

    asyncio.run(main())

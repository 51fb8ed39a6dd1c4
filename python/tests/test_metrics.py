"""The node's metrics: scraped over HTTP (metrics_listen=) while messages flow
through IM endpoint <-> buffer server <-> SMSC simulator, parsed with the
Prometheus client's own parser; the same text from Endpoint.metrics(), and the
status document from Endpoint.status()."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Dict, Iterator, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

import smslink
from smslink import BufferServer, Endpoint, MessageReceived, Smsc, StatusChanged
from smslink.testing import SmscSim

from conftest import WAIT, eventually, link, wait_event

Setup = Tuple[Endpoint, BufferServer, SmscSim]
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


@pytest.fixture
def chain() -> Iterator[Setup]:
    sim = SmscSim("gw", "pw")
    im = Endpoint(
        [link("im", "bs", listen="127.0.0.1:0", default=True)],
        metrics_listen="127.0.0.1:0",
    )
    addr = im.local_addr("im")
    assert addr is not None
    bs = BufferServer(
        [link("bs", "im", dial=addr, default=True)],
        smsc=Smsc(sim.address, "gw", "pw", keepalive=0),
        reconnect_min=0.02,
        reconnect_max=0.2,
        metrics_listen="127.0.0.1:0",
    )
    wait_event(bs, smslink.SmscUp)
    wait_event(im, smslink.LinkUp)
    yield im, bs, sim
    bs.close(0)
    im.close(0)
    sim.stop()


def get(ep: Endpoint, path: str) -> Tuple[int, str, str]:
    """Status code, content type and body of GET `path` on the endpoint's listener."""
    url = f"http://{ep.metrics_addr}{path}"
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and sorted labels."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(ep: Endpoint) -> Samples:
    code, ctype, body = get(ep, "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
    return samples(body)


def test_counters_agree_with_the_traffic(chain: Setup) -> None:
    im, bs, sim = chain
    n = 200
    assert get(bs, "/healthz")[0] == 200
    scrapes: List[Samples] = []
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            scrapes.append(scrape(im))
            stop.wait(0.01)

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        for i in range(n):
            im.send("12345", "+61400000001", f"mt {i}")
            sim.inject_mo("+61400000001", "12345", f"mo {i}")
        processed = received = 0
        while processed < n or received < n:
            ev = im.next_event(timeout=WAIT)
            assert ev is not None, (processed, received)
            if isinstance(ev, MessageReceived):
                im.ack(ev.link, ev.seq)
                received += 1
            elif isinstance(ev, StatusChanged) and ev.state == "processed":
                processed += 1
    finally:
        stop.set()
        thread.join()
    assert scrapes, "no scrape while the traffic flowed"
    out_key = ("smslink_link_messages_total", (("direction", "out"), ("link", "im")))
    seen = [s[out_key] for s in scrapes]
    assert seen == sorted(seen), "a counter went backwards"

    def settled() -> bool:
        s = scrape(im)
        return s[("smslink_link_tx_cursor", (("cursor", "processed"), ("link", "im")))] == n and s[
            ("smslink_link_rx_cursor", (("cursor", "processed"), ("link", "im")))
        ] == n

    assert eventually(settled)
    s = scrape(im)
    assert s[out_key] == n
    assert s[("smslink_link_messages_total", (("direction", "in"), ("link", "im")))] == n
    assert s[("smslink_link_up", (("link", "im"),))] == 1
    assert s[("smslink_link_ack_latency_seconds_count", (("link", "im"),))] == n
    assert samples(im.metrics())[out_key] == n

    assert eventually(
        lambda: scrape(bs).get(("smslink_smsc_mo_received_total", (("link", "bs"),))) == n
    )
    b = scrape(bs)
    assert b[("smslink_smsc_mt_accepted_total", (("link", "bs"),))] == n
    assert b[("smslink_smsc_up", (("link", "bs"),))] == 1
    assert sim.counters()["submits_accepted"] == n

    status = bs.status()
    [bs_link] = status["links"]
    assert bs_link["name"] == "bs" and bs_link["peer"] == "im"
    assert bs_link["tx"]["processed"] == n and bs_link["rx"]["processed"] == n
    assert bs_link["smsc"]["protocol"] == "cimd2" and bs_link["smsc"]["logged_in"]
    assert status["healthy"] and status["version"].count(".") == 2


def test_health_follows_the_smsc_session() -> None:
    sim = SmscSim("gw", "pw")
    bs = BufferServer(
        [link("bs", "im", listen="127.0.0.1:0")],
        smsc=Smsc(sim.address, "gw", "pw", keepalive=0),
        reconnect_min=0.02,
        reconnect_max=0.2,
        metrics_listen="127.0.0.1:0",
    )
    try:
        wait_event(bs, smslink.SmscUp)
        assert eventually(lambda: get(bs, "/healthz")[:3:2] == (200, "ok\n"))
        sim.stop()
        assert eventually(lambda: get(bs, "/healthz")[0] == 503)
        assert get(bs, "/nope")[0] == 404
    finally:
        bs.close(0)


def test_no_listener_unless_asked() -> None:
    ep = Endpoint([link("a", "b", listen="127.0.0.1:0")])
    try:
        assert ep.metrics_addr is None
        assert "smslink_link_up" in ep.metrics()
    finally:
        ep.close(0)
    with pytest.raises(smslink.ConfigError):
        Endpoint([link("a", "b", listen="127.0.0.1:0")], metrics_listen="nowhere")

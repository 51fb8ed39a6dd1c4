"""The test peers other suites build on."""

from __future__ import annotations

import smslink
from smslink import Endpoint, StatusChanged
from smslink.testing import Sink, SmscSim, Wan

from conftest import WAIT, eventually, link, wait_event


def test_sink_acknowledges_everything_with_the_chosen_outcome() -> None:
    with Sink(link("sink", "im", listen="127.0.0.1:0"), error_code=7) as sink:
        assert sink.address is not None
        with Endpoint([link("im", "sink", dial=sink.address, default=True)]) as im:
            for i in range(50):
                im.send("1", "2", f"s{i}")
            assert sink.wait_received(50, WAIT)
            st = wait_event(im, StatusChanged, lambda s: s.state == "processed")
            assert not st.accepted and st.error_code == 7
        assert sink.received == 50


def test_wan_stall_holds_traffic_and_resumes() -> None:
    with Sink(link("sink", "im", listen="127.0.0.1:0")) as sink:
        assert sink.address is not None
        with Wan(sink.address, delay=0.01) as wan:
            with Endpoint(
                [link("im", "sink", dial=wan.address, default=True, dead_after=5.0)]
            ) as im:
                wait_event(im, smslink.LinkUp)
                wan.stall(True)
                im.send("1", "2", "held")
                assert not sink.wait_received(1, 0.2), "stalled: nothing gets through"
                wan.stall(False)
                assert sink.wait_received(1, WAIT)
            assert wan.stats()["connections"] >= 1


def test_smsc_sim_counters_and_errors() -> None:
    sim = SmscSim(log=False)
    assert sim.address.startswith("127.0.0.1:")
    assert sim.counters()["logins"] == 0
    assert not sim.wait_for("logins", 1, 0.05)
    try:
        sim.wait_for("nonsense", 1, 0.01)
    except smslink.ConfigError as e:
        assert "counters()" in str(e)
    else:
        raise AssertionError("unknown counter accepted")
    final = sim.stop()
    assert final["connections"] == 0
    try:
        sim.inject_mo("1", "2", "x")
    except smslink.ClosedError:
        pass
    else:
        raise AssertionError("a stopped simulator took an MO")


def test_peers_answer_other_threads_while_one_waits() -> None:
    """A thread waiting in SmscSim.wait_for (GIL released) must not block calls
    from other threads, nor a stop."""
    import threading

    sim = SmscSim()
    results: list = []
    t = threading.Thread(target=lambda: results.append(sim.wait_for("logins", 1, 1.0)))
    t.start()
    for _ in range(20):
        sim.inject_mo("1", "2", "queued")
        assert sim.counters()["logins"] == 0
    assert sim.injected_pending() == 20
    t.join(WAIT)
    assert results == [False]
    sim.stop()


def test_wan_scheduled_cuts_are_survived() -> None:
    with Sink(link("sink", "im", listen="127.0.0.1:0")) as sink:
        assert sink.address is not None
        with Wan(sink.address, cut_every=(0.05, 0.1), seed=3) as wan:
            with Endpoint(
                [link("im", "sink", dial=wan.address, default=True)],
                reconnect_min=0.01,
                reconnect_max=0.05,
            ) as im:
                for i in range(100):
                    while True:
                        try:
                            im.send("1", "2", f"c{i}")
                            break
                        except smslink.RingFull:
                            assert im.wait_for_room("im", WAIT)
                assert sink.wait_received(100, WAIT), sink.received
                assert eventually(lambda: wan.stats()["cuts"] >= 1)
        assert sink.received == 100, "each message once"
    try:
        Wan("127.0.0.1:1", cut_every=(2.0, 1.0))
    except smslink.ConfigError as e:
        assert "max is below min" in str(e)
    else:
        raise AssertionError("a reversed range was accepted")

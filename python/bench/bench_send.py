"""Messages per second sent from Python.

Two measurements.

1. Hand-over (`handover_*`): what a Python caller pays per message while the
   link has room: with the ring empty (and its memory already touched by a
   warm-up lap), time --capacity messages, one `send` call each, then again with
   `send_batch` (batches of --batch pre-built tuples). The event loop drains the
   ring meanwhile, on the other core.

2. Sustained (`single_*`, `batch_*`): an Endpoint dials an in-process Sink (a link peer on its own
Rust thread that acknowledges every message at once, no Python involved). The
Python thread sends N messages, one `send` call each, then N more with
`send_batch` (batches of --batch pre-built tuples). When the ring is full the
sender blocks in `wait_for_room(link, min_room=batch)` (GIL released, woken by
the peer's acknowledgements) and goes on. Two figures per mode:

- offered: N / time until the last `send` returned (what the Python caller sees);
- delivered: N / time until the Sink had received and acknowledged all N (the
  link's end-to-end rate; every message crossed TCP, was stored, acknowledged
  and its slot freed).

Status events are switched off (`status_events=[]`): one Python object per state
change would measure event handling, not sending.

Run: python bench/bench_send.py [--count 1000000] [--batch 1000] [--capacity 65536]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Dict, List, Tuple

import smslink
from smslink.testing import Sink


def run(count: int, batch: int, capacity: int) -> Dict[str, float]:
    link = "bench"
    sink = Sink(smslink.Link("sink", "bench key, 16 bytes+", insecure_plaintext=True, listen="127.0.0.1:0", capacity=capacity))
    address = sink.address
    assert address is not None
    ep = smslink.Endpoint(
        [smslink.Link(link, "bench key, 16 bytes+", insecure_plaintext=True, dial=address, capacity=capacity, default=True)],
        status_events=[],
    )
    results: Dict[str, float] = {}
    try:
        # Wait for the link (the first send would otherwise just queue).
        while not ep.link_stats(link).up:
            ep.next_event(timeout=0.05)

        text = "benchmark message of a typical length, 50 chars.."
        messages: List[Tuple[str, str, str]] = [("12345", "+61400000001", text)] * batch
        send = ep.send

        def lap(single: bool, n: int) -> float:
            """Seconds to hand over n messages into an empty ring (never full)."""
            base = sink.received
            start = time.perf_counter()
            if single:
                for _ in range(n):
                    send("12345", "+61400000001", text)
            else:
                sent = 0
                while sent < n:
                    sent += ep.send_batch(link, messages[: min(batch, n - sent)])
            elapsed = time.perf_counter() - start
            if not sink.wait_received(base + n, 120) or not ep.wait_for_room(link, 60, capacity):
                raise RuntimeError("lap not delivered")
            return elapsed

        lap(False, capacity)  # warm-up: touch every slot's memory once
        results["handover_single_per_s"] = capacity / lap(True, capacity)
        results["handover_batch_per_s"] = capacity / lap(False, capacity)

        start = time.perf_counter()
        sent = 0
        while sent < count:
            try:
                send("12345", "+61400000001", text)
                sent += 1
            except smslink.RingFull:
                ep.wait_for_room(link, min_room=batch)
        offered = time.perf_counter() - start
        if not sink.wait_received(count, 120):
            raise RuntimeError(f"sink got {sink.received} of {count}")
        delivered = time.perf_counter() - start
        results["single_offered_per_s"] = count / offered
        results["single_delivered_per_s"] = count / delivered

        base = sink.received
        start = time.perf_counter()
        sent = 0
        while sent < count:
            want = min(batch, count - sent)
            chunk = messages if want == batch else messages[:want]
            taken = ep.send_batch(link, chunk)
            sent += taken
            if taken < want:
                ep.wait_for_room(link, min_room=batch)
        offered = time.perf_counter() - start
        if not sink.wait_received(base + count, 120):
            raise RuntimeError(f"sink got {sink.received - base} of {count}")
        delivered = time.perf_counter() - start
        results["batch_offered_per_s"] = count / offered
        results["batch_delivered_per_s"] = count / delivered
    finally:
        ep.close(0)
        sink.stop()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--capacity", type=int, default=65536)
    a = p.parse_args()
    r = run(a.count, a.batch, a.capacity)
    print(json.dumps({"count": a.count, "batch": a.batch, "capacity": a.capacity,
                      **{k: round(v) for k, v in r.items()}}))


if __name__ == "__main__":
    main()

"""The hop from the instance that got a chat to the link's holder: XADD to the
link's stream, XREADGROUP BLOCK at the holder, one XACK per batch read. The last
20 entries stay unacknowledged (the holder dies); another consumer claims them.

  stream-hop.py always|everysec     ($REDIS: the Redis port)
"""
import os
import sys
import threading
import time

import redis

port = int(os.environ["REDIS"])
r = redis.Redis(host="127.0.0.1", port=port)
r.config_set("appendfsync", sys.argv[1])
r.delete("mt:au")
r.xgroup_create("mt:au", "holder", id="0", mkstream=True)
N = 1000
lat = []


def holder():
    c = redis.Redis(host="127.0.0.1", port=port)
    got = 0
    while got < N:
        for _, entries in c.xreadgroup("holder", "h1", {"mt:au": ">"}, count=100, block=1000) or []:
            now = time.time()
            done = []
            for eid, f in entries:
                lat.append((now - float(f[b"t"])) * 1e6)
                got += 1
                if got <= N - 20:
                    done.append(eid)
            if done:
                c.xack("mt:au", "holder", *done)


t = threading.Thread(target=holder)
t.start()
for i in range(N):
    r.xadd("mt:au", {"t": f"{time.time():.6f}", "body": f"chat {i}"})
    time.sleep(0.002)
t.join()
lat.sort()
print(f"appendfsync {sys.argv[1]}: XADD -> XREADGROUP median {lat[N // 2]:.0f} us, p99 {lat[int(N * .99)]:.0f} us")
pending = r.xpending("mt:au", "holder")["pending"]
_, claimed, _ = r.xautoclaim("mt:au", "holder", "h2", min_idle_time=0, start_id="0-0")
print(f"  unacknowledged when h1 stopped: {pending}; claimed by h2: {len(claimed)}")
r.delete("mt:au")
r.config_set("appendfsync", "always")

"""A Redis lease per link with a fencing token, and what it costs.

  lease.py hold LINK NAME TTL_MS     take the lease (waiting for it), renew every TTL/3,
                                     print `ACQUIRED name t gen=G`
  lease.py contend LINK NAME TTL_MS  wait for the lease; print `ACQUIRED ...` and exit
  lease.py bench                     renewal and fenced-write costs

$REDIS: the port of a Redis on 127.0.0.1.
"""
import os
import sys
import time

import redis

r = redis.Redis(host="127.0.0.1", port=int(os.environ["REDIS"]))

# SET NX PX and the fencing token in one step. The token is Redis's own clock in
# milliseconds (never below the last token + 1): it keeps growing even if the
# counter were lost with a Redis restart, since a lease is only granted after the
# previous one expired.
ACQUIRE = r.register_script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1])} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gen = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0') + 1)
redis.call('SET', KEYS[2], gen)
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. gen, 'PX', ARGV[2])
return {1, gen}
""")
RENEW = r.register_script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
""")
# All of one node's leases in one call: the client's cost no longer grows with links.
RENEW_MANY = r.register_script("""
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[i + 1] then
    redis.call('PEXPIRE', k, ARGV[1])
    n = n + 1
  end
end
return n
""")
# A write of the link's state: only by the holder of the current token.
FENCED_XADD = r.register_script("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
return redis.call('XADD', KEYS[2], '*', 'rec', ARGV[2])
""")


def lease_keys(link):
    return [f"lease:{link}", f"gen:{link}"]


def acquire(link, name, ttl):
    """Returns the token once the lease is ours. Between tries it sleeps until the
    holder's lease would run out, at most TTL/10 (a released lease is seen soon)."""
    while True:
        ok, v = ACQUIRE(keys=lease_keys(link), args=[name, ttl])
        if ok == 1:
            return f"{name}:{v}", v
        time.sleep(min(max(v, 1), ttl / 10) / 1000)


def hold(link, name, ttl):
    token, gen = acquire(link, name, ttl)
    print(f"ACQUIRED {name} {time.time():.6f} gen={gen}", flush=True)
    while True:
        time.sleep(ttl / 3 / 1000)
        if RENEW(keys=lease_keys(link)[:1], args=[token, ttl]) != 1:
            print(f"LOST {name} {time.time():.6f}", flush=True)
            return


def contend(link, name, ttl):
    _, gen = acquire(link, name, ttl)
    print(f"ACQUIRED {name} {time.time():.6f} gen={gen}", flush=True)


def timed(n, f):
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        xs.append((time.perf_counter() - t) * 1e6)
    xs.sort()
    return f"median {xs[n // 2]:.0f} us, p99 {xs[int(n * 0.99)]:.0f} us"


def must(v):
    assert v is not None, "a fenced write was refused: the bench lost its lease"
    return v


def bench():
    fsync = r.config_get("appendfsync")["appendfsync"]
    print(f"appendfsync {fsync}")
    r.delete("lease:b", "gen:b", "j:b")
    token, _ = acquire("b", "bench", 60000)
    print("  renewal, one round trip:", timed(1000, lambda: RENEW(keys=["lease:b"], args=[token, 60000])))
    p = r.pipeline(transaction=False)
    for i in range(10000):
        p.set(f"lease:l{i}", "x:1", px=60000)
    p.execute()
    t = time.perf_counter()
    for b in range(10):
        p = r.pipeline(transaction=False)
        for i in range(b * 1000, b * 1000 + 1000):
            RENEW(keys=[f"lease:l{i}"], args=["x:1", 60000], client=p)
        assert all(v == 1 for v in p.execute())
    dt = time.perf_counter() - t
    print(f"  10,000 renewals in pipelines of 1,000: {dt * 1000:.0f} ms ({dt / 10000 * 1e6:.1f} us each, client side included)")
    t = time.perf_counter()
    for b in range(10):
        ks = [f"lease:l{i}" for i in range(b * 1000, b * 1000 + 1000)]
        assert RENEW_MANY(keys=ks, args=[60000] + ["x:1"] * 1000) == 1000
    dt = time.perf_counter() - t
    print(f"  10,000 renewals as 10 script calls of 1,000 keys: {dt * 1000:.0f} ms ({dt / 10000 * 1e6:.1f} us each)")
    rec = "x" * 700  # about one journal Accepted record
    print("  fenced XADD of 700 bytes:", timed(1000, lambda: must(FENCED_XADD(keys=["lease:b", "j:b"], args=[token, rec]))))

    def turn():
        p = r.pipeline(transaction=False)
        for _ in range(50):
            FENCED_XADD(keys=["lease:b", "j:b"], args=[token, rec], client=p)
        assert all(v is not None for v in p.execute())

    print("  50 fenced XADDs in one pipeline (one event-loop turn):", timed(300, turn))
    stale = FENCED_XADD(keys=["lease:b", "j:b"], args=["bench:1", rec])
    print("  fenced XADD with a stale token:", "refused" if stale is None else "ACCEPTED (wrong)")
    print(f"  server time per script call: {r.info('commandstats')['cmdstat_evalsha']['usec_per_call']:.1f} us")
    r.delete("j:b")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("hold", "contend", "bench"):
        sys.exit(__doc__)
    if sys.argv[1] == "bench":
        bench()
    else:
        {"hold": hold, "contend": contend}[sys.argv[1]](sys.argv[2], sys.argv[3], int(sys.argv[4]))

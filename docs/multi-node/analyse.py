"""Read the logs of one run of xmpp.py and say where each chat went.

  analyse.py latency CHAT_LOG COMPONENT_LOG
  analyse.py failover EVENT_TIME CHAT_LOG COMPONENT_LOG...
      per chat: received by which component, bounced to the sender, or lost
      silently; per user, the last delivery by the killed instance (B) and the
      first by the survivor (A) relative to EVENT_TIME (the kill)
"""
import sys


def lines(path, tag):
    return [l.split() for l in open(path) if l.startswith(tag + " ")]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def latency(chat_log, comp_log):
    sent = {p[3]: float(p[2]) for p in lines(chat_log, "SENT")}
    recv = {p[-1]: float(p[2]) for p in lines(comp_log, "RECV")}
    echo = {p[-1]: float(p[2]) for p in lines(chat_log, "GOT") if p[-2] == "echo"}
    one = [(recv[k] - t) * 1000 for k, t in sent.items() if k in recv]
    print(f"client -> component: {len(one)}/{len(sent)} delivered, median {pct(one, .5):.2f} ms, max {max(one):.2f} ms")
    back = [(echo[k] - t) * 1000 for k, t in sent.items() if k in echo]
    if back:
        print(f"client -> component -> client: median {pct(back, .5):.2f} ms, max {max(back):.2f} ms")


def failover(t0, chat_log, comp_logs):
    sent = {p[3]: float(p[2]) for p in lines(chat_log, "SENT")}
    got = {}
    for f in comp_logs:
        for p in lines(f, "RECV"):
            got.setdefault(p[-1], []).append((p[1], float(p[2])))
    bounced = {p[-1] for p in lines(chat_log, "GOT") if p[4] == "error"}
    lost = [k for k in sent if k not in got and k not in bounced]
    twice = [k for k, v in got.items() if len(v) > 1]
    print(f"sent {len(sent)}, received {len(got)}, bounced {len(bounced)}, lost silently {len(lost)}, received twice {len(twice)}")
    for what, keys in (("lost", lost), ("bounced", bounced)):
        if keys:
            ts = sorted((sent[k] - t0) * 1000 for k in keys if k in sent)
            print(f"  {what}: sent {ts[0]:+.1f} .. {ts[-1]:+.1f} ms relative to the event")
    for user in sorted({k.rsplit("-", 1)[0] for k in sent}):
        mine = [(who, t) for k, v in got.items() if k.rsplit("-", 1)[0] == user for who, t in v]
        counts = {}
        for who, _ in mine:
            counts[who] = counts.get(who, 0) + 1
        last_b = max((t for who, t in mine if who == "B"), default=None)
        first_a = min((t for who, t in mine if who == "A" and t >= t0), default=None)
        line = f"  {user}: " + ", ".join(f"{n} by {w}" for w, n in sorted(counts.items()))
        if last_b is not None and first_a is not None and first_a > last_b:
            line += f"; last by B {(last_b - t0) * 1000:+.1f} ms, then first by A {(first_a - t0) * 1000:+.1f} ms"
        print(line)


if __name__ == "__main__":
    if sys.argv[1] == "latency":
        latency(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "failover":
        failover(float(sys.argv[2]), sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)

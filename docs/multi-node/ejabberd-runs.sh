#!/bin/bash
# The XMPP measurements of docs/multi-node.md on a cluster from cluster.sh.
#
#   ejabberd-runs.sh DIR latency          component B on node 2; alice (node 1)
#                                         and dave (node 2) chat to it, echoed
#   ejabberd-runs.sh DIR kill|stop        instances A (node 1) and B (node 2) of
#                                         sms.example.org; alice (node 1), dave and
#                                         erin (node 2) chat every 10 ms; after 4 s
#                                         B is SIGKILLed (kill) or SIGSTOPped (stop)
#                                         SIX=1: six users, alice, bob, carol (node 1),
#                                         dave, erin, frank (node 2)
#   ejabberd-runs.sh DIR node             only B (node 2) serves sms.example.org;
#                                         alice (node 1) chats every 10 ms; after 4 s
#                                         node 2's ejabberd is SIGKILLed (restart it
#                                         with ejabberdctl ... start afterwards)
#   ejabberd-runs.sh DIR shard            nobody serves au.sms.example.org while
#                                         alice chats to it; after 3 s a component
#                                         for it starts on node 2
# PY: the python with slixmpp (default /tmp/scale-venv/bin/python).
set -uo pipefail
dir=${1:?cluster dir}; what=${2:?what}
. "$dir/env"
py=${PY:-/tmp/scale-venv/bin/python}
here=$(cd "$(dirname "$0")" && pwd)
out=$dir/run-$what; mkdir -p "$out"; cd "$out"
# An array, not a function: `$!` must be the python process itself.
x=("$py" "$here/xmpp.py")

case $what in
latency)
    "${x[@]}" component B "$N2SVC" echo > B.log 2> B.err & B=$!; sleep 2
    "${x[@]}" chat 0.05 5 alice:"$N1C2S" > n1.log 2> n1.err
    "${x[@]}" chat 0.05 5 dave:"$N2C2S" > n2.log 2> n2.err
    kill $B; wait $B 2>/dev/null
    echo "user on node 1, component on node 2:"; python3 "$here/analyse.py" latency n1.log B.log
    echo "user on node 2, component on node 2:"; python3 "$here/analyse.py" latency n2.log B.log
    ;;
kill|stop|node)
    A=
    users=(alice:"$N1C2S")
    if [ "$what" != node ]; then
        "${x[@]}" component A "$N1SVC" > A.log 2> A.err & A=$!
        users+=(dave:"$N2C2S" erin:"$N2C2S")
        [ -n "${SIX:-}" ] && users+=(bob:"$N1C2S" carol:"$N1C2S" frank:"$N2C2S")
    fi
    "${x[@]}" component B "$N2SVC" > B.log 2> B.err & B=$!
    sleep 2
    "${x[@]}" chat 0.01 7 "${users[@]}" > chat.log 2> chat.err & U=$!
    sleep 4
    node2=$(pgrep -f "beam.smp.*n2@localhost")
    date +%s.%N > event
    case $what in
        kill) kill -9 $B ;;
        stop) kill -STOP $B ;;
        node) kill -9 "$node2" ;;
    esac
    wait $U
    kill -9 $A $B 2>/dev/null; kill -CONT $B 2>/dev/null; wait 2>/dev/null
    touch A.log
    python3 "$here/analyse.py" failover "$(cat event)" chat.log A.log B.log
    ;;
shard)
    TARGET=au.sms.example.org "${x[@]}" chat 0.01 6 alice:"$N1C2S" > chat.log 2> chat.err & U=$!
    sleep 3
    date +%s.%N > event
    DOMAIN=au.sms.example.org "${x[@]}" component B "$N2SVC" > B.log 2> B.err & C=$!
    wait $U; kill $C; wait $C 2>/dev/null
    python3 "$here/analyse.py" failover "$(cat event)" chat.log B.log
    python3 - "$(cat event)" <<'PY'
import sys
t0 = float(sys.argv[1])
up = [float(l.split()[2]) for l in open("B.log") if l.startswith("UP ")]
first = min(float(l.split()[2]) for l in open("B.log") if l.startswith("RECV "))
print(f"  component process started -> stream up {(up[0] - t0) * 1000:.0f} ms -> first chat {(first - t0) * 1000:.0f} ms")
bounce = [l.split() for l in open("chat.log") if l.startswith("GOT ") and " error " in l]
sent = {l.split()[3]: float(l.split()[2]) for l in open("chat.log") if l.startswith("SENT ")}
lat = sorted(float(b[2]) - sent[b[-1]] for b in bounce if b[-1] in sent)
if lat:
    print(f"  a chat to the absent domain bounces {lat[0] * 1000:.1f} .. {lat[-1] * 1000:.1f} ms after it was sent")
PY
    ;;
*) echo "unknown run $what" >&2; exit 2 ;;
esac

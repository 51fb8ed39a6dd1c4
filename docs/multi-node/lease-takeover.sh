#!/bin/bash
# lease-takeover.sh DIR TTL_MS TRIALS: a holder renews every TTL/3, a contender
# waits; the holder is SIGKILLed at a random moment. Prints, per trial, the ms
# from the kill to the contender holding the lease.
set -uo pipefail
dir=${1:?cluster dir}; ttl=${2:?ttl ms}; n=${3:?trials}
. "$dir/env"; export REDIS
py=${PY:-/tmp/scale-venv/bin/python}
here=$(cd "$(dirname "$0")" && pwd)
cd "$dir"
for _ in $(seq 1 "$n"); do
    redis-cli -p "$REDIS" del lease:t > /dev/null
    "$py" "$here/lease.py" hold t H "$ttl" > holder.log & h=$!
    sleep 0.5
    "$py" "$here/lease.py" contend t C "$ttl" > contender.log & c=$!
    sleep "$(python3 -c "import random; print(1 + random.random() * $ttl / 1000)")"
    k=$(date +%s.%N); kill -9 $h
    wait $c; wait $h 2>/dev/null
    python3 -c "print(round((float(open('contender.log').read().split()[2]) - $k) * 1000))"
done | tr '\n' ' '
echo

#!/bin/bash
# Two ejabberd 23.01 nodes in one Mnesia cluster and one Redis 7.0, all on
# 127.0.0.1 with free ports, for the measurements in docs/multi-node.md.
#
#   cluster.sh up DIR [BALANCING]   BALANCING: none (default) | slots | type
#   cluster.sh down DIR
#
# none:  several connections of sms.example.org, ejabberd's default routing
# slots: domain_balancing {type: bare_source, component_number: 2}
# type:  domain_balancing {type: bare_source} (no component_number)
#
# Needs root (ejabberdctl runs the nodes as the ejabberd user) and
# `apt-get install ejabberd redis-server`; stop the packaged services first
# (`systemctl stop ejabberd redis-server`) or they share epmd and ports.
set -euo pipefail
cmd=${1:?up|down}; dir=${2:?directory}; balancing=${3:-none}

ctl() { # ctl N args...: ejabberdctl for node nN of this cluster
    local n=$1; shift
    ERL_EPMD_PORT=$EPMD ejabberdctl --config-dir "$dir/n$n/cfg" --node "n$n@localhost" \
        --spool "$dir/n$n/spool" --logs "$dir/n$n/log" "$@"
}

if [ "$cmd" = down ]; then
    . "$dir/env"
    for n in 1 2; do ctl $n stop >/dev/null 2>&1 || true; done
    for n in 1 2; do ctl $n stopped >/dev/null 2>&1 || true; done
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    ERL_EPMD_PORT=$EPMD epmd -kill >/dev/null 2>&1 || true
    exit 0
fi

mkdir -p "$dir"
python3 - "$dir/env" <<'PY'
import socket, sys
names = ["EPMD", "N1C2S", "N1SVC", "N2C2S", "N2SVC", "REDIS"]
socks = [socket.socket() for _ in names]
for s in socks:
    s.bind(("127.0.0.1", 0))
with open(sys.argv[1], "w") as f:
    for n, s in zip(names, socks):
        f.write(f"{n}={s.getsockname()[1]}\n")
PY
. "$dir/env"
echo "DIR=$dir" >> "$dir/env"

case $balancing in
    none) balance_cfg="" ;;
    slots) balance_cfg=$'domain_balancing:\n  sms.example.org:\n    type: bare_source\n    component_number: 2' ;;
    type) balance_cfg=$'domain_balancing:\n  sms.example.org:\n    type: bare_source' ;;
    *) echo "unknown balancing $balancing" >&2; exit 2 ;;
esac

for n in 1 2; do
    c2s=N${n}C2S; svc=N${n}SVC
    mkdir -p "$dir/n$n/spool" "$dir/n$n/log" "$dir/n$n/cfg"
    cat > "$dir/n$n/cfg/ejabberd.yml" <<YML
hosts:
  - example.org
loglevel: info
certfiles: []
listen:
  -
    port: ${!c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  -
    port: ${!svc}
    ip: "127.0.0.1"
    module: ejabberd_service
    password: svcsecret
auth_method: internal
access_rules:
  local:
    allow: all
  c2s:
    allow: all
modules:
  mod_roster: {}
  mod_disco: {}
  mod_offline: {}
$balance_cfg
YML
    cat > "$dir/n$n/cfg/ejabberdctl.cfg" <<CFG
ERLANG_NODE=n$n@localhost
INET_DIST_INTERFACE=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
EJABBERD_PID_PATH=$dir/n$n/ejabberd.pid
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
CFG
    touch "$dir/n$n/cfg/inetrc"
done
chown -R ejabberd:ejabberd "$dir"
chmod 755 "$dir"

for n in 1 2; do ctl $n start; done
for n in 1 2; do ctl $n started; done
t0=$(date +%s.%N)
ctl 2 join_cluster n1@localhost
ctl 2 started
echo "join_cluster took $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s"
ctl 1 list_cluster
for u in alice bob carol dave erin frank; do ctl 1 register $u example.org "pw-$u" >/dev/null; done

cat > "$dir/redis.conf" <<RC
bind 127.0.0.1
port $REDIS
dir $dir
save ""
appendonly yes
appendfsync always
RC
redis-server "$dir/redis.conf" > "$dir/redis.log" 2>&1 &
echo $! > "$dir/redis.pid"
until redis-cli -p "$REDIS" ping >/dev/null 2>&1; do sleep 0.1; done
echo "up: $(tr '\n' ' ' < "$dir/env")"

#!/bin/bash
# routes.sh DIR [DOMAIN]: the routes node 1's Mnesia holds for a component domain
# (pid undefined: a balancing slot nobody serves).
. "${1:?cluster dir}/env"
ERL_EPMD_PORT=$EPMD erl -noshell -sname "probe$$" -setcookie "$(cat ~ejabberd/.erlang.cookie)" \
    -kernel inet_dist_use_interface '{127,0,0,1}' \
    -eval "io:format(\"~p~n\", [rpc:call('n1@localhost', mnesia, dirty_read, [route, <<\"${2:-sms.example.org}\">>])]), halt()."

"""XMPP ends for the measurements in docs/multi-node.md (slixmpp).

  xmpp.py component NAME PORT [echo]      an XEP-0114 component for $DOMAIN
                                          (default sms.example.org); prints
                                          `UP name t` and `RECV name t from to body`
  xmpp.py chat INTERVAL SECONDS USER:PORT...
                                          each user chats `user-i` to
                                          +61400000001@$TARGET every INTERVAL s;
                                          prints `SENT user t body` and
                                          `GOT user t from type body`
"""
import asyncio
import os
import sys
import time

from slixmpp import ClientXMPP
from slixmpp.componentxmpp import ComponentXMPP

SECRET = "svcsecret"


def stamp() -> str:
    return f"{time.time():.6f}"


class Component(ComponentXMPP):
    def __init__(self, name: str, port: int, echo: bool) -> None:
        super().__init__(os.environ.get("DOMAIN", "sms.example.org"), SECRET, "127.0.0.1", port)
        self.name, self.echo = name, echo
        self.add_event_handler("session_start", lambda _: print(f"UP {name} {stamp()}", flush=True))
        self.add_event_handler("message", self.on_message)

    def on_message(self, m) -> None:
        print(f"RECV {self.name} {stamp()} {m['from'].bare} {m['to']} {m['body']}", flush=True)
        if self.echo and m["type"] != "error":
            self.send_message(mto=m["from"], mfrom=m["to"], mbody="echo " + m["body"], mtype="chat")


class User(ClientXMPP):
    def __init__(self, user: str, port: int) -> None:
        super().__init__(
            f"{user}@example.org/t",
            f"pw-{user}",
            plugin_config={"feature_mechanisms": {"unencrypted_scram": True}},
        )
        self.enable_direct_tls = False
        self.user, self.port = user, port
        self.ready = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)

    async def on_start(self, _) -> None:
        self.send_presence()
        self.ready.set()

    def on_message(self, m) -> None:
        print(f"GOT {self.user} {stamp()} {m['from']} {m['type']} {m['body']}", flush=True)


async def chat(interval: float, seconds: float, specs: list[str]) -> None:
    target = "+61400000001@" + os.environ.get("TARGET", "sms.example.org")
    users = [User(u, int(p)) for u, p in (s.split(":") for s in specs)]
    for u in users:
        u.connect("127.0.0.1", u.port)
    await asyncio.wait_for(asyncio.gather(*(u.ready.wait() for u in users)), 20)
    end, i = time.time() + seconds, 0
    while time.time() < end:
        for u in users:
            u.send_message(mto=target, mbody=f"{u.user}-{i}", mtype="chat")
            print(f"SENT {u.user} {stamp()} {u.user}-{i}", flush=True)
        i += 1
        await asyncio.sleep(interval)
    await asyncio.sleep(2)  # late answers and bounces
    for u in users:
        u.disconnect()
    await asyncio.sleep(0.5)


def main() -> None:
    if sys.argv[1] == "component":
        c = Component(sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "echo")
        c.connect()
        asyncio.get_event_loop().run_forever()
    elif sys.argv[1] == "chat":
        asyncio.run(chat(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

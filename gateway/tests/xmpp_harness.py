"""Test parts: a real Prosody on loopback with its own config and data dir, slixmpp
clients as PC users, a fake communication buffer, and condition waits."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional

import slixmpp
from prometheus_client.parser import text_string_to_metric_families

from smslink_gateway.events import (
    AckLater,
    Event,
    LinkDown,
    LinkUp,
    Receipt,
    RingFull,
    SmsIn,
    SmsReport,
    SmsStatus,
)

DOMAIN = "example.test"
COMPONENT = "sms." + DOMAIN
SECRET = "component-secret"
PASSWORD = "pw-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def terminate(proc: "subprocess.Popen[bytes]") -> None:
    """Stop a server process: politely first, then for good after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Prosody:
    dir: Path
    c2s_port: int
    component_port: int
    proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def config(self) -> Path:
        return self.dir / "prosody.cfg.lua"

    def write_config(self) -> None:
        (self.dir / "data").mkdir(exist_ok=True)
        (self.dir / "certs").mkdir(exist_ok=True)
        self.config.write_text(
            f"""
-- Test server: loopback only, no TLS, no s2s, no HTTP.
run_as_root = true
pidfile = "{self.dir}/prosody.pid"
data_path = "{self.dir}/data"
certificates = "{self.dir}/certs"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ {self.component_port} }}
component_interfaces = {{ "127.0.0.1" }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix"; "offline" }}
modules_disabled = {{ "s2s"; "tls" }}
authentication = "internal_hashed"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

VirtualHost "{DOMAIN}"

Component "{COMPONENT}"
    component_secret = "{SECRET}"
"""
        )

    def register(self, user: str, password: str = PASSWORD) -> None:
        subprocess.run(
            ["prosodyctl", "--config", str(self.config), "register", user, DOMAIN, password],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self, deadline_s: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            ["prosody", "--config", str(self.config), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + deadline_s
        while not (port_open(self.c2s_port) and port_open(self.component_port)):
            if self.proc.poll() is not None:
                raise RuntimeError("prosody exited: " + self.log())
            if time.monotonic() > end:
                raise TimeoutError("prosody did not open its ports: " + self.log())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None

    def log(self) -> str:
        p = self.dir / "prosody.log"
        return p.read_text() if p.exists() else ""


def start_prosody(tmp: Path, users: list[str]) -> Prosody:
    if shutil.which("prosody") is None:
        raise RuntimeError("prosody is not installed (apt-get install prosody)")
    p = Prosody(tmp, free_port(), free_port())
    p.write_config()
    for u in users:
        p.register(u)
    p.start()
    return p


def scrape(port: int) -> dict[str, float]:
    """GET /metrics on 127.0.0.1:port, parsed: `name{label="value",...}` -> value
    (labels sorted by name)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[s.name + ("{" + labels + "}" if labels else "")] = s.value
    return out


async def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll a condition on the event loop until it holds or the deadline passes."""
    end = asyncio.get_running_loop().time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


_SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")


def show_of(p: Any) -> str:
    """A presence as one word: available, away, ..., unavailable, error."""
    if p is None:
        return "none yet"
    if p["type"] in ("unavailable", "error") + _SUBSCRIPTION_TYPES:
        return str(p["type"])
    return str(p["show"] or "available")


class PcUser(slixmpp.ClientXMPP):  # type: ignore[misc]
    """A PC user's XMPP client that records what it receives."""

    def __init__(self, user: str, port: int) -> None:
        # The test server has no TLS; SCRAM keeps the password off the wire anyway.
        super().__init__(
            f"{user}@{DOMAIN}/pc",
            PASSWORD,
            plugin_config={"feature_mechanisms": {"unencrypted_scram": True}},
        )
        self.port = port
        self.messages: list[Any] = []
        self.errors: list[Any] = []
        self.receipts: list[str] = []
        self.presences: list[Any] = []
        self.subscribe_requests: list[str] = []
        self.ready = asyncio.Event()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0184")
        self.plugin["xep_0184"].auto_ack = False
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("disconnected", lambda _: self.ready.clear())
        self.add_event_handler("message", self._message)
        self.add_event_handler("message_error", self.errors.append)
        self.add_event_handler("receipt_received", lambda m: self.receipts.append(m["receipt"]))
        self.add_event_handler("presence", self._presence)
        self.add_event_handler(
            "presence_subscribe", lambda p: self.subscribe_requests.append(p["from"].bare)
        )

    async def _start(self, _: Any) -> None:
        self.send_presence()
        await self.get_roster()
        self.ready.set()

    def _message(self, msg: Any) -> None:
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.messages.append(msg)

    def _presence(self, p: Any) -> None:
        self.presences.append(p)

    async def online(self, timeout: float = 10.0) -> "PcUser":
        self.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self.ready.wait(), timeout)
        return self

    async def until_component_answers(self, jid: str, timeout: float = 20.0) -> None:
        """Until the component is connected to the server (disco#info succeeds)."""
        end = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.plugin["xep_0030"].get_info(jid=jid, timeout=2)
                return
            except (slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout):
                if asyncio.get_running_loop().time() > end:
                    raise
                await asyncio.sleep(0.05)

    def bodies_from(self, jid: str) -> list[str]:
        return [m["body"] for m in self.messages if m["from"].bare == jid]

    def last_presence_from(self, jid: str) -> Optional[Any]:
        """The latest availability (not subscription) presence from `jid`."""
        for p in reversed(self.presences):
            if p["from"].bare == jid and p["type"] not in _SUBSCRIPTION_TYPES:
                return p
        return None

    def chat(self, to: str, body: str, receipt: bool = False) -> str:
        m = self.make_message(mto=to, mbody=body, mtype="chat")
        m["id"] = self.new_id()
        if receipt:
            m["request_receipt"] = True
        m.send()
        return str(m["id"])

    async def close(self) -> None:
        if self.ready.is_set():
            self.ready.clear()
            self.disconnect()
            await asyncio.wait_for(self.disconnected, 5)


@dataclass
class FakeEndpoint:
    """The communication buffer's shape (`SmsBuffer`) without the link: a ring of
    `capacity` slots per link, sends recorded, events injected by the test."""

    capacity: int = 255
    link: str = "au"
    sent: list[tuple[str, int, str, str, str, int]] = field(default_factory=list)
    in_ring: dict[int, int] = field(default_factory=dict)  # seq -> client_ref
    acked: list[tuple[str, int]] = field(default_factory=list)
    queue: "asyncio.Queue[Event]" = field(default_factory=asyncio.Queue)
    next_seq: int = 1
    next_mo_seq: int = 1
    busy_acks: int = 0  # this many acks fail with AckLater first

    def send(self, sender: str, recipient: str, text: str, client_ref: int = 0) -> Receipt:
        if len(self.in_ring) >= self.capacity:
            raise RingFull(f"link {self.link}: ring full")
        seq = self.next_seq
        self.next_seq += 1
        self.in_ring[seq] = client_ref
        self.sent.append((self.link, seq, sender, recipient, text, client_ref))
        return Receipt(self.link, seq)

    def route(self, recipient: str) -> Optional[str]:
        return self.link

    def restored(self) -> set[int]:
        return set()

    def ack(self, link: str, seq: int) -> None:
        if self.busy_acks > 0:
            self.busy_acks -= 1
            raise AckLater("busy")
        self.acked.append((link, seq))

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    # test side
    def up(self) -> None:
        self.queue.put_nowait(LinkUp(self.link))

    def down(self) -> None:
        self.queue.put_nowait(LinkDown(self.link))

    def mo(self, sender: str, text: str, recipient: str = "12345", incomplete: bool = False) -> int:
        seq = self.next_mo_seq
        self.next_mo_seq += 1
        self.queue.put_nowait(SmsIn(self.link, seq, sender, recipient, text, incomplete))
        return seq

    def report(self, client_ref: int, state: str, error_code: int = 0) -> None:
        """The SMSC's delivery report on the MT sent with `client_ref`."""
        self.queue.put_nowait(SmsReport(self.link, client_ref, state, error_code))

    def finish(self, seq: int, error_code: Optional[int] = None) -> None:
        ref = self.in_ring.pop(seq)
        self.queue.put_nowait(
            SmsStatus(self.link, seq, ref, "Processed", error_code, error_code is None)
        )

    def texts_to(self, phone: str) -> list[str]:
        return [s[4] for s in self.sent if s[3] == phone]

"""`smslink.Smpp`: the settings of an SMPP 3.4 SMSC, checked on creation, and a
buffer server that binds and submits as they say (seen by a minimal SMSC written
here with `struct`)."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import smslink
from smslink import BufferServer, Endpoint, MessageReceived, Smpp, Smsc, StatusChanged

from conftest import WAIT, eventually, link, wait_event

ADDR = "127.0.0.1:2775"


def test_defaults() -> None:
    s = Smpp(ADDR, "esme", "secret")
    assert (s.addr, s.system_id, s.system_type, s.bind) == (ADDR, "esme", "", "transceiver")
    assert (s.window, s.enquire_link_interval, s.response_timeout) == (10, 30.0, 30.0)
    assert (s.numeric_ton, s.numeric_npi) == (0, 1)
    assert s.registered_delivery and not s.gsm_packed
    assert repr(s) == 'Smpp("127.0.0.1:2775", system_id="esme", bind="transceiver")'
    assert "secret" not in repr(s), "the password is never shown"


def test_accepted_values() -> None:
    s = Smpp(
        ADDR,
        "fifteen chars..",
        "eight ch",
        system_type="twelve chars",
        bind="transmitter-receiver",
        window=65536,
        enquire_link_interval=0,
        response_timeout=0.5,
        registered_delivery=False,
        numeric_ton=6,
        numeric_npi=18,
        gsm_packed=True,
    )
    assert (s.system_id, s.system_type, s.bind) == ("fifteen chars..", "twelve chars", "transmitter-receiver")
    assert (s.window, s.enquire_link_interval, s.response_timeout) == (65536, 0.0, 0.5)
    assert (s.numeric_ton, s.numeric_npi) == (6, 18)
    assert not s.registered_delivery and s.gsm_packed


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("nowhere", "esme", "pw"), {}, 'write "host:port"'),
        ((ADDR, "sixteen chars...", "pw"), {}, "system_id cannot be sent: longer than 15"),
        ((ADDR, "esme", "ninechars"), {}, "password cannot be sent: longer than 8"),
        ((ADDR, "esme", "pw"), {"system_type": "thirteen char"}, "system_type cannot be sent"),
        ((ADDR, "esme\0", "pw"), {}, "NUL octet"),
        ((ADDR, "esme", "pw"), {"bind": "transmitter"}, 'neither "transceiver"'),
        ((ADDR, "esme", "pw"), {"window": 0}, "window 0 is out of range 1..=65536"),
        ((ADDR, "esme", "pw"), {"window": -1}, "window -1"),
        ((ADDR, "esme", "pw"), {"window": 65537}, "window 65537"),
        ((ADDR, "esme", "pw"), {"enquire_link_interval": -1.0}, "enquire_link_interval must be"),
        ((ADDR, "esme", "pw"), {"response_timeout": 0}, "response_timeout must be"),
        ((ADDR, "esme", "pw"), {"response_timeout": float("nan")}, "response_timeout must be"),
        ((ADDR, "esme", "pw"), {"numeric_ton": 0x91}, "numeric_ton 145 is not an SMPP 3.4 type"),
        ((ADDR, "esme", "pw"), {"numeric_ton": -1}, "numeric_ton -1"),
        ((ADDR, "esme", "pw"), {"numeric_npi": 2}, "numeric_npi 2 is not an SMPP 3.4 numbering plan"),
        ((ADDR, "esme", "pw"), {"numeric_npi": 256}, "numeric_npi 256"),
    ],
)
def test_refused_values(args: Tuple[str, str, str], kwargs: Dict[str, Any], message: str) -> None:
    with pytest.raises(smslink.ConfigError, match=message):
        Smpp(*args, **kwargs)


def test_smsc_takes_either_protocol_and_nothing_else() -> None:
    for smsc in (Smsc("127.0.0.1:1", "u", "p"), Smpp("127.0.0.1:1", "esme", "pw")):
        bs = BufferServer([link("bs", "im", dial="127.0.0.1:1")], smsc=smsc)
        # The statistics appear once the node's loop has published them.
        assert eventually(lambda: bs.smsc_stats() is not None), smsc
        bs.close(0)
    with pytest.raises(TypeError, match=r"smslink.Smsc\(...\) \(CIMD2\) or smslink.Smpp"):
        BufferServer([link("bs", "im", dial="127.0.0.1:1")], smsc="127.0.0.1:1")  # type: ignore[arg-type]


# --- a minimal SMSC ---------------------------------------------------------

BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
ENQUIRE_LINK = 0x00000015
RESP = 0x80000000


def cstrings(body: bytes, count: int) -> Tuple[List[bytes], bytes]:
    """The first `count` NUL-terminated strings of `body`, and what follows them."""
    out = []
    for _ in range(count):
        value, _, body = body.partition(b"\0")
        out.append(value)
    return out, body


def parse_submit(body: bytes) -> Dict[str, object]:
    """The addresses, registered_delivery and short_message of a submit_sm body."""
    (_,), rest = cstrings(body, 1)
    src_ton, src_npi = rest[0], rest[1]
    (src,), rest = cstrings(rest[2:], 1)
    dst_ton, dst_npi = rest[0], rest[1]
    (dst,), rest = cstrings(rest[2:], 1)
    _, rest = cstrings(rest[3:], 2)  # esm_class, protocol_id, priority_flag; the times
    registered, sm_length = rest[0], rest[4]
    return {
        "source": (src_ton, src_npi, src.decode()),
        "destination": (dst_ton, dst_npi, dst.decode()),
        "registered_delivery": registered,
        "short_message": rest[5 : 5 + sm_length],
    }


def pdu(command: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command, 0, seq) + body


class MiniSmsc:
    """Accepts one ESME: answers bind_transceiver (then sends `mo` as a deliver_sm),
    submit_sm, enquire_link and unbind; records every request it answers."""

    def __init__(self, mo_sender: str, mo_recipient: str, mo_text: str) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        host, port = self.listener.getsockname()
        self.address = f"{host}:{port}"
        self.requests: List[Tuple[int, bytes]] = []
        self.mo = (
            b"\0"  # service_type
            + bytes([0, 1]) + mo_sender.encode() + b"\0"
            + bytes([0, 1]) + mo_recipient.encode() + b"\0"
            + bytes([0, 0, 0]) + b"\0\0"  # esm_class, protocol_id, priority; times
            + bytes([0, 0, 0, 0, len(mo_text)]) + mo_text.encode()  # data_coding 0: GSM
        )
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 16:
                    length, command, _, seq = struct.unpack(">IIII", buf[:16])
                    if len(buf) < length:
                        break
                    body, buf = buf[16:length], buf[length:]
                    self.requests.append((command, body))
                    if command == BIND_TRANSCEIVER:
                        conn.sendall(pdu(command | RESP, seq, b"smsc\0") + pdu(DELIVER_SM, 1, self.mo))
                    elif command == SUBMIT_SM:
                        conn.sendall(pdu(command | RESP, seq, b"%d\0" % len(self.requests)))
                    elif command in (ENQUIRE_LINK, UNBIND):
                        conn.sendall(pdu(command | RESP, seq))

    def first(self, command: int) -> Optional[bytes]:
        return next((body for c, body in self.requests if c == command), None)

    def close(self) -> None:
        self.listener.close()


Chain = Tuple[Endpoint, BufferServer, MiniSmsc]


@pytest.fixture
def chain() -> Iterator[Chain]:
    smsc = MiniSmsc("0401234567", "12345", "reply from the phone")
    im = Endpoint([link("im", "bs", listen="127.0.0.1:0", default=True)])
    addr = im.local_addr("im")
    assert addr is not None
    bs = BufferServer(
        [link("bs", "im", dial=addr, default=True)],
        smsc=Smpp(
            smsc.address,
            "esme",
            "secret",
            system_type="VMA",
            numeric_ton=2,
            numeric_npi=8,
            registered_delivery=False,
            enquire_link_interval=0,
        ),
        reconnect_min=0.02,
        reconnect_max=0.2,
    )
    yield im, bs, smsc
    bs.close(0)
    im.close(0)
    smsc.close()


def test_buffer_server_binds_and_submits_as_configured(chain: Chain) -> None:
    im, bs, smsc = chain
    wait_event(bs, smslink.SmscUp)
    bind = smsc.first(BIND_TRANSCEIVER)
    assert bind is not None
    assert cstrings(bind, 3)[0] == [b"esme", b"secret", b"VMA"]

    mo = wait_event(im, MessageReceived)
    assert (mo.sender, mo.recipient, mo.text) == ("0401234567", "12345", "reply from the phone")
    im.ack(mo.link, mo.seq)

    r = im.send("12345", "0401234567", "to the phone")
    done = wait_event(im, StatusChanged, lambda s: s.state == "processed" and s.seq == r.seq)
    assert done.accepted
    submit = smsc.first(SUBMIT_SM)
    assert submit is not None
    sm = parse_submit(submit)
    # Both numeric addresses get the configured TON/NPI.
    assert sm["source"] == (2, 8, "12345")
    assert sm["destination"] == (2, 8, "0401234567")
    assert sm["registered_delivery"] == 0
    assert sm["short_message"] == b"to the phone"
    assert eventually(lambda: getattr(bs.smsc_stats(), "mt_accepted", 0) == 1)
    stats = bs.smsc_stats()
    assert stats is not None and stats.logged_in and stats.mo_received == 1

"""Every error is a SmslinkError subclass with a message a person can act on."""

from __future__ import annotations

import pytest

import smslink
from smslink import Endpoint, Link

ERRORS = [
    smslink.RingFull,
    smslink.NoRoute,
    smslink.UnknownLink,
    smslink.ClosedError,
    smslink.BusyError,
    smslink.ConfigError,
    smslink.InvalidMessage,
    smslink.CodecError,
    smslink.NetworkError,
]


@pytest.mark.parametrize("cls", ERRORS)
def test_hierarchy(cls: type) -> None:
    assert issubclass(cls, smslink.SmslinkError)
    assert issubclass(smslink.SmslinkError, Exception)
    assert cls.__module__ == "smslink"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of listen="),
        ({"listen": "127.0.0.1:0", "dial": "127.0.0.1:1"}, "exactly one of listen="),
        ({"listen": "nowhere"}, 'write "host:port"'),
        ({"listen": "127.0.0.1:0", "capacity": 0}, "out of range 1..=65536"),
        ({"listen": "127.0.0.1:0", "heartbeat": 2.0, "dead_after": 1.0}, "longer than heartbeat"),
        ({"listen": "127.0.0.1:0", "heartbeat": -1.0}, "heartbeat must be"),
        ({"listen": "127.0.0.1:0", "prefixes": [""]}, "use default=True"),
    ],
)
def test_link_settings_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(smslink.ConfigError, match=message):
        Link("im", "key", **kwargs)


def test_psk_must_be_given() -> None:
    with pytest.raises(smslink.ConfigError, match="psk is empty"):
        Link("im", b"", listen="127.0.0.1:0")
    with pytest.raises(smslink.ConfigError, match="str or bytes"):
        Link("im", 12, listen="127.0.0.1:0")  # type: ignore[arg-type]
    assert "key" not in repr(Link("im", "key", listen="127.0.0.1:0")), "the key is never shown"


def test_endpoint_settings_are_checked() -> None:
    with pytest.raises(smslink.ConfigError, match="at least one Link"):
        Endpoint([])
    a = Link("x", "k", listen="127.0.0.1:0")
    with pytest.raises(smslink.ConfigError, match="two links are named"):
        Endpoint([a, a])
    with pytest.raises(smslink.ConfigError, match="unknown state 'sending'|unknown state \"sending\""):
        Endpoint([a], status_events=["sending"])
    with pytest.raises(smslink.ConfigError, match="reconnect_max"):
        Endpoint([a], reconnect_min=2.0, reconnect_max=1.0)
    with pytest.raises(smslink.ConfigError, match="'sometimes'|\"sometimes\""):
        Endpoint([a], journal_dir="/tmp/j", journal_sync="sometimes")
    with pytest.raises(smslink.ConfigError, match="without journal_dir"):
        Endpoint([a], journal_max_disk_bytes=1 << 20)
    with pytest.raises(smslink.ConfigError, match="must not be empty"):
        Endpoint([a], journal_dir="")


def test_bind_failure_is_a_network_error() -> None:
    with Endpoint([Link("x", "k", listen="127.0.0.1:0")]) as first:
        taken = first.local_addr("x")
        assert taken is not None
        with pytest.raises(smslink.NetworkError):
            Endpoint([Link("y", "k", listen=taken)])


def test_message_errors() -> None:
    with Endpoint([Link("x", "k", listen="127.0.0.1:0", default=True)]) as ep:
        with pytest.raises(smslink.InvalidMessage, match="longer than 20"):
            ep.send("1", "123456789012345678901", "x")
        with pytest.raises(smslink.InvalidMessage, match="not both"):
            ep.send("1", "2", text="a", data=b"b")
        with pytest.raises(smslink.InvalidMessage, match="61440-byte limit"):
            ep.send("1", "2", "x" * (60 * 1024 + 1))
        with pytest.raises(smslink.InvalidMessage, match="character other than"):
            ep.send("1", "2;3", "x")
        with pytest.raises(smslink.UnknownLink, match=r'no link named "nope"; this endpoint has \["x"\]'):
            ep.send("1", "2", "x", link="nope")
        with pytest.raises(smslink.UnknownLink):
            ep.ack("nope", 1)
        with pytest.raises(smslink.UnknownLink):
            ep.link_stats("nope")
        with pytest.raises(TypeError):
            ep.send(1, "2", "x")  # type: ignore[arg-type]
        with pytest.raises(UnicodeEncodeError):
            ep.send("1", "2", "lone surrogate \ud800")
        with pytest.raises(smslink.InvalidMessage, match="str .text. or bytes .binary."):
            ep.send_batch("x", [("1", "2", 3)])  # type: ignore[list-item]


def test_log_level_is_checked() -> None:
    smslink.set_log_level("warn")
    smslink.set_log_level("info")
    with pytest.raises(smslink.ConfigError, match="error, warn, info, debug"):
        smslink.set_log_level("loud")

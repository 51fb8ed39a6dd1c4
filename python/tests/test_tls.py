"""The link over TLS from Python: TLS is the default, a link comes up with pinned
keys, and a wrong fingerprint keeps it down."""

from __future__ import annotations

from pathlib import Path

import pytest

import smslink
from smslink import Endpoint, Link
from smslink.testing import make_site_identity

from conftest import PSK, wait_event


def test_a_link_without_tls_settings_is_refused() -> None:
    with pytest.raises(smslink.ConfigError, match="runs TLS"):
        Link("im", PSK, listen="127.0.0.1:0")
    with pytest.raises(smslink.ConfigError, match="runs TLS"):
        Link("im", PSK, listen="127.0.0.1:0", tls_cert="c", tls_key="k")
    with pytest.raises(smslink.ConfigError, match="choose one"):
        Link("im", PSK, listen="127.0.0.1:0", tls_cert="c", tls_key="k", insecure_plaintext=True)
    with pytest.raises(smslink.ConfigError, match="64 hex digits"):
        Link("im", PSK, listen="127.0.0.1:0", tls_cert="c", tls_key="k", tls_peer_fingerprint="ab")


def test_missing_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    link = Link(
        "im", PSK, listen="127.0.0.1:0",
        tls_cert=str(tmp_path / "none.crt"), tls_key=str(tmp_path / "none.key"),
        tls_peer_fingerprint="00" * 32,
    )
    with pytest.raises(smslink.ConfigError, match="none.crt"):
        Endpoint([link])


def _pair(tmp_path: Path, listener_pins: str) -> tuple[Endpoint, Endpoint]:
    im_cert, im_key, im_fp = make_site_identity("im", str(tmp_path))
    bs_cert, bs_key, bs_fp = make_site_identity("bs", str(tmp_path))
    im = Endpoint([Link(
        "im", PSK, listen="127.0.0.1:0", default=True, expected_peer="bs",
        tls_cert=im_cert, tls_key=im_key, tls_peer_fingerprint=listener_pins or bs_fp,
    )])
    addr = im.local_addr("im")
    assert addr is not None
    bs = Endpoint(
        [Link(
            "bs", PSK, dial=addr, default=True, expected_peer="im",
            tls_cert=bs_cert, tls_key=bs_key, tls_peer_fingerprint=im_fp,
        )],
        reconnect_min=0.02,
        reconnect_max=0.1,
    )
    return im, bs


def test_messages_cross_a_tls_link(tmp_path: Path) -> None:
    im, bs = _pair(tmp_path, "")
    with im, bs:
        wait_event(im, smslink.LinkUp)
        im.send("100", "200", "over tls")
        got = wait_event(bs, smslink.MessageReceived)
        assert got.text == "over tls"


def test_wrong_fingerprint_keeps_the_link_down(tmp_path: Path) -> None:
    im, bs = _pair(tmp_path, "11" * 32)
    with im, bs:
        with pytest.raises(AssertionError, match="no LinkUp"):
            wait_event(im, smslink.LinkUp, timeout=1.0)

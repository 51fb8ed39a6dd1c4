"""The gateway's metrics without an XMPP server: registries of their own, the
listener, the --metrics-listen option."""

from __future__ import annotations

from pathlib import Path

import pytest

from smslink_gateway.cli import main
from smslink_gateway.metrics import ERROR_KINDS, GatewayMetrics, parse_listen
from xmpp_harness import scrape


def test_two_gateways_in_one_process_count_apart() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    try:
        port_a, port_b = a.serve("127.0.0.1", 0), b.serve("127.0.0.1", 0)
        a.expect_links(["au"])
        a.sms_in.labels("au").inc()
        a.error("smsc_rejected")
        b.link_up.labels("nz").set(1)
        ma, mb = scrape(port_a), scrape(port_b)
        assert ma['smslink_gateway_sms_in_total{link="au"}'] == 1
        assert ma['smslink_link_up{link="au"}'] == 0
        assert ma['smslink_gateway_errors_total{kind="smsc_rejected"}'] == 1
        assert 'smslink_gateway_sms_in_total{link="au"}' not in mb
        assert 'smslink_link_up{link="au"}' not in mb
        assert mb['smslink_link_up{link="nz"}'] == 1
        # Every kind is there from the start, so that rate() has a series.
        assert all(mb[f'smslink_gateway_errors_total{{kind="{k}"}}'] == 0 for k in ERROR_KINDS)
    finally:
        a.close()
        b.close()


def test_unknown_error_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown error kind"):
        GatewayMetrics().error("oops")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("127.0.0.1:9103", ("127.0.0.1", 9103)),
        ("[::1]:9103", ("::1", 9103)),
        (":9103", ("0.0.0.0", 9103)),
    ],
)
def test_parse_listen(spec: str, expected: tuple[str, int]) -> None:
    assert parse_listen(spec) == expected


@pytest.mark.parametrize("bad", ["9103", "host:", "host:port", "host:70000"])
def test_parse_listen_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(bad)


def test_bad_metrics_listen_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(
            [
                "--jid", "sms.example.test",
                "--secret", "s",
                "--sms-number", "12345",
                "--db", str(tmp_path / "s.db"),
                "--link", "name=au,dial=127.0.0.1:1,psk=a-key-of-16-bytes-or-more,insecure-plaintext",
                "--metrics-listen", "9103",
            ]
        )
    assert exit.value.code == 2
    assert "--metrics-listen" in capsys.readouterr().err

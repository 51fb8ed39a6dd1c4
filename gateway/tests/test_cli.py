"""The operator's command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from smslink_gateway.cli import parse_link


def test_parse_link_with_psk_file(tmp_path: Path) -> None:
    key = tmp_path / "au.psk"
    key.write_bytes(b"s3cret\n")
    spec = parse_link(f"name=au,dial=bs.example.net:7000,psk-file={key},prefixes=+61;+64,default")
    assert spec == {
        "name": "au",
        "dial": "bs.example.net:7000",
        "psk": b"s3cret",
        "prefixes": ["+61", "+64"],
        "default": True,
    }


@pytest.mark.parametrize(
    "bad, why",
    [
        ("dial=h:1,psk=k", "name="),
        ("name=au,psk=k", "dial="),
        ("name=au,dial=h:1", "psk"),
        ("name=au,dial=h:1,psk=k,colour=red", "unknown link option"),
        ("name=au,dial=h:1,psk=k,fast", "needs a value"),
    ],
)
def test_parse_link_errors_say_what_is_wrong(bad: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        parse_link(bad)


def test_bad_endpoint_setting_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smslink_gateway.cli import main

    with pytest.raises(SystemExit) as exit:
        main(
            [
                "--jid", "sms.example.test",
                "--secret", "s",
                "--sms-number", "12345",
                "--db", str(tmp_path / "s.db"),
                "--link", "name=au,dial=127.0.0.1:1,psk=a-key-of-16-bytes-or-more,insecure-plaintext,capacity=100000",
            ]
        )
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("smslink-gateway: ") and "capacity" in err and "Traceback" not in err


def test_journal_settings_reach_the_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smslink_gateway.cli import main

    with pytest.raises(SystemExit) as exit:
        main(
            [
                "--jid", "sms.example.test",
                "--secret", "s",
                "--sms-number", "12345",
                "--db", str(tmp_path / "s.db"),
                "--link", "name=au,dial=127.0.0.1:1,psk=a key of 16+ bytes,insecure-plaintext",
                "--journal-dir", str(tmp_path / "journal"),
                "--journal-sync", "sometimes",
            ]
        )
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("smslink-gateway: ") and "sometimes" in err and "Traceback" not in err


def test_a_bad_reassembly_timeout_is_an_operator_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smslink_gateway.cli import main

    with pytest.raises(SystemExit) as exit:
        main(
            [
                "--jid", "sms.example.test",
                "--secret", "s",
                "--sms-number", "12345",
                "--db", str(tmp_path / "s.db"),
                "--link", "name=au,dial=127.0.0.1:1,psk=a key of 16+ bytes,insecure-plaintext",
                "--reassembly-timeout", "-1",
            ]
        )
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("smslink-gateway: ") and "reassembly_timeout" in err and "Traceback" not in err


def test_several_instances_need_the_journal_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A link's journal moves with the link: without one, a new holder would start
    the link under a new epoch."""
    from smslink_gateway.cli import main

    with pytest.raises(SystemExit) as exit:
        main(
            [
                "--jid", "sms.example.test",
                "--secret", "s",
                "--sms-number", "12345",
                "--db", str(tmp_path / "s.db"),
                "--link", "name=au,dial=127.0.0.1:1,psk=a key of 16+ bytes,insecure-plaintext",
                "--redis", "redis://127.0.0.1:1/0",
            ]
        )
    assert exit.value.code == 2
    assert "--redis needs --journal-dir" in capsys.readouterr().err

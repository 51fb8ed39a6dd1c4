"""The CIMD2 codec from Python."""

from __future__ import annotations

import pytest

from smslink import cimd2


def test_encode_matches_the_wire_format() -> None:
    raw = cimd2.encode(1, 1, [(10, "user"), (11, "pw")], checksum=False)
    assert raw == b"\x0201:001\t010:user\t011:pw\t\x03"
    with_sum = cimd2.encode(1, 1, {10: "user", 11: b"pw"})
    assert with_sum.startswith(b"\x0201:001\t010:user\t011:pw\t") and len(with_sum) == len(raw) + 2


def test_decoder_handles_any_cut_and_reports_bad_packets() -> None:
    stream = cimd2.encode(3, 5, [(21, "+61400000001"), (33, "hi")]) + b"junk" + cimd2.encode(
        51, 5, [(60, 260101120000)]
    )
    d = cimd2.Decoder()
    items = []
    for i in range(len(stream)):
        items += d.feed(stream[i : i + 1])
    assert [type(p).__name__ for p in items] == ["Packet", "Packet"]
    first, second = items
    assert isinstance(first, cimd2.Packet) and isinstance(second, cimd2.Packet)
    assert (first.op, first.number, first.get(21), first.get(33)) == (3, 5, b"+61400000001", b"hi")
    assert second.get(60) == b"260101120000" and second.get(99) is None
    assert d.skipped == 4 and d.buffered == 0
    assert first == cimd2.Packet(3, 5, [(21, "+61400000001"), (33, "hi")])
    assert cimd2.Decoder().feed(first.encode()) == [first]
    bad = bytearray(first.encode())
    bad[-2:-1] = b"0" if bad[-2:-1] != b"0" else b"1"
    [m] = cimd2.Decoder().feed(bytes(bad))
    assert isinstance(m, cimd2.Malformed) and "checksum" in m.error and m.op == 3 and m.number == 5


def test_text_helpers() -> None:
    dcs, value = cimd2.encode_text("Hello {world}")
    assert dcs is None and cimd2.decode_text(value) == "Hello {world}"
    dcs, hexval = cimd2.encode_text("Привет")
    assert dcs == 8 and cimd2.decode_ucs2_hex(hexval) == "Привет"
    with pytest.raises(cimd2.CodecError, match="160"):
        cimd2.encode_text("x" * 161)


def test_codec_errors_are_actionable() -> None:
    with pytest.raises(cimd2.CodecError, match="three digits"):
        cimd2.encode(1, 1, [(1000, "x")])
    with pytest.raises(cimd2.CodecError, match="reserved"):
        cimd2.encode(1, 1, [(10, "a\tb")])
    with pytest.raises(cimd2.CodecError, match="two digits"):
        cimd2.Packet(100, 1)
    with pytest.raises(cimd2.CodecError, match="pairs"):
        cimd2.encode(1, 1, ["nope"])  # type: ignore[list-item]


def test_error_texts_name_the_smsc_reason() -> None:
    assert cimd2.error_text(300) == "incorrect destination address"
    assert cimd2.error_text(100) == "invalid login"
    assert cimd2.error_text(777) == "SMSC error 777"

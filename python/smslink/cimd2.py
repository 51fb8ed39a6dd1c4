"""The CIMD2 codec: frame and parse packets, convert text.

    >>> from smslink import cimd2
    >>> raw = cimd2.encode(1, 1, [(10, "user"), (11, "secret")])
    >>> [p.op for p in cimd2.Decoder().feed(raw)]
    [1]
"""

from __future__ import annotations

from ._smslink import CodecError, Decoder, Malformed, Packet
from ._smslink import cimd2_decode_text as decode_text
from ._smslink import cimd2_decode_ucs2_hex as decode_ucs2_hex
from ._smslink import cimd2_encode as encode
from ._smslink import cimd2_encode_text as encode_text

__all__ = [
    "CodecError",
    "Decoder",
    "Malformed",
    "Packet",
    "decode_text",
    "decode_ucs2_hex",
    "encode",
    "encode_text",
]

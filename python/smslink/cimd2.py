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
    "ERROR_TEXTS",
    "CodecError",
    "Decoder",
    "Malformed",
    "Packet",
    "decode_text",
    "decode_ucs2_hex",
    "encode",
    "encode_text",
    "error_text",
]

#: What the SMSC's error codes (parameter 900) mean, as Kannel and the CIMD2
#: specification name them.
ERROR_TEXTS = {
    0: "no error",
    1: "unexpected operation",
    2: "syntax error",
    3: "unsupported parameter",
    4: "connection to the message centre lost",
    5: "no response from the message centre",
    6: "general system error",
    7: "cannot find information",
    8: "parameter formatting error",
    9: "requested operation failed",
    100: "invalid login",
    101: "incorrect access type",
    102: "too many users with this login",
    103: "login refused by the message centre",
    300: "incorrect destination address",
    301: "incorrect number of destination addresses",
    302: "syntax error in user data",
    303: "incorrect combination of binary, header and normal user data",
    304: "incorrect data coding scheme",
    305: "incorrect validity period",
    306: "incorrect originator address",
    307: "incorrect protocol identifier",
    308: "incorrect first delivery time",
    309: "incorrect reply path",
    310: "incorrect status report request",
    311: "incorrect cancel-enabled flag",
    312: "incorrect priority",
    313: "incorrect tariff class",
    314: "incorrect service description",
    315: "incorrect transport type",
    316: "incorrect message type",
    318: "incorrect MMS flag",
    319: "incorrect operation timer",
}


def error_text(code: int) -> str:
    """A person-readable reason for a CIMD2 error code, e.g. for a
    ``StatusChanged.error_code`` of a message the SMSC refused."""
    text = ERROR_TEXTS.get(code)
    if text is not None:
        return text
    return f"SMSC error {code}"

"""SMS commands a phone user sends to the gateway, and the SMS texts it answers with.

Commands are case-insensitive and start the SMS:

    WHO               which of my buddies are online
    MSG alice hello   chat message to buddy alice (also: @alice hello)
    ADD alice         add alice to my buddies (asks alice to share presence)
    DEL alice         remove alice from my buddies
    HELP              the list of commands

Any other text is a reply to whoever chatted with this phone last; with nobody to
reply to, the gateway answers with the help text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

SMS_MAX = 160

HELP_TEXT = "Commands: WHO | MSG name text | ADD name | DEL name | HELP. Other text replies to the last person who wrote to you."


@dataclass(frozen=True)
class Who:
    pass


@dataclass(frozen=True)
class Msg:
    name: str
    text: str


@dataclass(frozen=True)
class Add:
    name: str


@dataclass(frozen=True)
class Remove:
    name: str


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Plain:
    text: str


@dataclass(frozen=True)
class Malformed:
    """A command word with missing arguments: answer with its usage."""

    usage: str


Command = Union[Who, Msg, Add, Remove, Help, Plain, Malformed]


def parse(text: str) -> Command:
    stripped = text.strip()
    if stripped.startswith("@"):
        head, _, rest = stripped[1:].partition(" ")
        if head and rest.strip():
            return Msg(head, rest.strip())
        return Malformed("@name text")
    word, _, rest = stripped.partition(" ")
    word = word.upper()
    rest = rest.strip()
    if word in ("WHO", "ONLINE"):
        return Who()
    if word in ("HELP", "?"):
        return Help()
    if word in ("MSG", "TO"):
        name, _, body = rest.partition(" ")
        if name and body.strip():
            return Msg(name, body.strip())
        return Malformed("MSG name text")
    if word == "ADD":
        if rest and " " not in rest:
            return Add(rest)
        return Malformed("ADD name")
    if word in ("DEL", "REMOVE"):
        if rest and " " not in rest:
            return Remove(rest)
        return Malformed("DEL name")
    return Plain(stripped)


def fits_one_sms(text: str) -> bool:
    """Whether the text travels as one SMS (160 GSM septets, or 70 UCS-2 units when
    it has a character GSM lacks), as the buffer server will encode it."""
    try:
        from smslink.cimd2 import encode_text
        from smslink import SmslinkError
    except ImportError:  # without the module: the plain GSM limit
        return len(text) <= SMS_MAX
    try:
        encode_text(text)
    except SmslinkError:
        return False
    return True


#: Most parts a concatenated SMS has: a longer chat is refused.
MAX_PARTS = 255


def sms_parts(text: str) -> int:
    """How many SMS the text takes as one concatenated SMS (the buffer server
    splits it; the phone shows one message)."""
    try:
        from smslink import sms_parts as parts
    except ImportError:  # without the module: 153 GSM characters a part
        return 1 if len(text) <= SMS_MAX else -(-len(text) // 153)
    return parts(text)


def chat_sms(name: str, body: str) -> Optional[str]:
    """The SMS text for a chat from `name`: `name: body`, sent whole however long;
    None when even 255 parts cannot carry it."""
    text = f"{name}: {body}"
    return text if sms_parts(text) <= MAX_PARTS else None


def fit_sms(text: str) -> str:
    """Cut an answer to one SMS, marking the cut with "~"."""
    if fits_one_sms(text):
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits_one_sms(text[:mid] + "~"):
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "~"


def who_text(online: list[tuple[str, Optional[str]]], offline: list[str]) -> str:
    """`online`: (name, show) with show None for plain available."""
    if not online and not offline:
        return "You have no buddies yet. ADD name to add one."
    parts = []
    if online:
        parts.append(
            "Online: " + ", ".join(n if not s else f"{n} ({s})" for n, s in online)
        )
    else:
        parts.append("Nobody online")
    if offline:
        parts.append("Offline: " + ", ".join(offline))
    return fit_sms(". ".join(parts))


def smsc_error_text(code: int) -> str:
    """The reason a PC user reads when the SMSC refused an SMS."""
    try:
        from smslink.cimd2 import ERROR_TEXTS

        meaning = ERROR_TEXTS.get(code, "rejected")
    except ImportError:  # the store and commands work without the module
        meaning = "rejected"
    return f"SMSC rejected the SMS: error {code} ({meaning})"

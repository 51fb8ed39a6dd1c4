"""The runtime's log lines in Python's logging: under ``smslink.<target>`` with
their fields, and never a deadlock between a node's thread and the GIL."""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Callable, Dict, Iterator, Optional, Tuple

import pytest

import smslink
from smslink import Endpoint

from conftest import WAIT, link, wait_event


class _Waiter(logging.Handler):
    """Keeps the first record matching `pred` and signals it."""

    def __init__(self, pred: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__()
        self.pred = pred
        self.found = threading.Event()
        self.record: Optional[logging.LogRecord] = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.record is None and self.pred(record):
            self.record = record
            self.found.set()


def _fields(record: logging.LogRecord) -> Dict[str, str]:
    fields: Dict[str, str] = getattr(record, "smslink_fields", {})
    return fields


@pytest.fixture
def link_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("smslink.link")
    yield logger
    for h in list(logger.handlers):
        if isinstance(h, _Waiter):
            logger.removeHandler(h)


def _pair(tag: str) -> Tuple[Endpoint, Endpoint]:
    """Two endpoints on loopback with link names of their own, so that lines of
    other tests' nodes cannot match."""
    im = Endpoint([link(f"{tag}-im", f"{tag}-bs", listen="127.0.0.1:0", default=True)])
    addr = im.local_addr(f"{tag}-im")
    assert addr is not None
    bs = smslink.BufferServer([link(f"{tag}-bs", f"{tag}-im", dial=addr, default=True)])
    return im, bs


def _line(name: str, event: str) -> Callable[[logging.LogRecord], bool]:
    return lambda r: _fields(r).get("link") == name and _fields(r).get("event") == event


def test_link_up_arrives_under_smslink_link_with_its_fields(
    caplog: pytest.LogCaptureFixture, link_logger: logging.Logger
) -> None:
    caplog.set_level(logging.INFO, logger="smslink")
    waiter = _Waiter(_line("up-bs", "up"))
    link_logger.addHandler(waiter)
    im, bs = _pair("up")
    try:
        assert waiter.found.wait(WAIT), "no link-up record for up-bs"
    finally:
        bs.close(0)
        im.close(0)
    record = waiter.record
    assert record is not None
    assert (record.name, record.levelno) == ("smslink.link", logging.INFO)
    assert record.getMessage().startswith("link=up-bs event=up peer=")
    assert list(_fields(record))[:3] == ["link", "event", "peer"]
    # The waiter sees the record first; the capture handler (further up the
    # logger tree) gets it right after, on the logging thread.
    deadline = time.monotonic() + WAIT
    while record not in caplog.records:
        assert time.monotonic() < deadline, "record never reached the capture handler"
        time.sleep(0.001)


def test_dropping_endpoints_while_they_log_does_not_deadlock(
    caplog: pytest.LogCaptureFixture, link_logger: logging.Logger
) -> None:
    # Dropping an endpoint joins its node's thread with the GIL held: the node's
    # link-down line must not need the GIL to be written.
    caplog.set_level(logging.INFO, logger="smslink")
    waiter = _Waiter(_line("drop-im", "down"))
    link_logger.addHandler(waiter)
    im, bs = _pair("drop")
    wait_event(im, smslink.LinkUp)
    wait_event(bs, smslink.LinkUp)
    del im, bs
    gc.collect()
    assert waiter.found.wait(WAIT), "no link-down record for drop-im"

"""The runtime's log lines into the standard :mod:`logging` module.

Each line goes to the logger ``smslink.<target>`` (``smslink.link``,
``smslink.smsc``, ``smslink.runtime``) at its level, with its ``key=value`` pairs
as ``record.smslink_fields`` (a dict, in line order). The compiled module only
queues lines (a node's thread never waits for the GIL); the thread
``smslink-logs`` hands them to ``logging``, so records carry that thread's name
and arrive a moment after the event.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import List, Optional, Tuple

from . import _smslink

_LEVELS = {
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}
# How long the thread waits for a line before checking whether the program ends.
_WAKE_EVERY = 0.1

_lock = threading.Lock()
_thread: Optional[threading.Thread] = None


def route_logs() -> None:
    """Send the runtime's log lines to ``logging`` instead of stderr (done when
    ``smslink`` is imported; calling it again does nothing). The runtime produces
    lines up to :func:`smslink.set_log_level` (``'info'`` by default); the loggers'
    own levels and handlers decide what is kept. At interpreter exit the thread
    stops and later lines go to stderr again."""
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _smslink._queue_log_records(True)
        _thread = threading.Thread(target=_run, name="smslink-logs")
        _thread.start()


def _run() -> None:
    # Not a daemon thread: one stopped at exit while waiting in the compiled module
    # could crash the interpreter. It ends once the main thread has finished,
    # which interpreter shutdown marks before joining the remaining threads.
    main = threading.main_thread()
    while main.is_alive():
        _emit_all(_smslink._take_log_records(_WAKE_EVERY))
    _smslink._queue_log_records(False)
    _emit_all(_smslink._take_log_records(0.0))


def _emit_all(records: List[Tuple[str, str, str, List[Tuple[str, str]]]]) -> None:
    for level, target, message, fields in records:
        logger = logging.getLogger("smslink." + target)
        number = _LEVELS.get(level, logging.INFO)
        if not logger.isEnabledFor(number):
            continue
        try:
            logger.log(number, message, extra={"smslink_fields": dict(fields)})
        except Exception:  # noqa: BLE001
            # A failing filter must not stop the lines after it (handlers report
            # their own errors through logging's handleError).
            continue


def _restart_in_child() -> None:
    # A forked child has the queue but not the thread that empties it.
    global _thread
    if _thread is not None:
        _thread = None
        route_logs()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_in_child)

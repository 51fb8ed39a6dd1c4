"""In-process peers for tests and benchmarks (all on loopback, each on its own
thread, none holding the GIL while it works):

- :class:`SmscSim`: a CIMD2 SMSC; inject MO with ``inject_mo``, read accepted
  submits with ``accepted()``, reject by recipient with ``reject_recipients``.
- :class:`Wan`: a TCP proxy with delay, jitter, bandwidth, ``cut_all()``,
  ``stall(True/False)`` and outages, to put between two endpoints.
- :class:`Sink`: a link peer that acknowledges every message it receives.
- :func:`make_site_identity`: a throwaway TLS key and certificate for a link,
  with the fingerprint the peer pins.
"""

from __future__ import annotations

from ._smslink import Sink, Sms, SmscSim, Wan, make_site_identity

__all__ = ["Sink", "Sms", "SmscSim", "Wan", "make_site_identity"]

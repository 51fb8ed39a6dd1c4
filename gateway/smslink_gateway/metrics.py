"""What the gateway counts, in Prometheus terms, and the HTTP listener that serves it.

Each `GatewayMetrics` has a registry of its own (not prometheus_client's global one),
so that several gateways can live in one process, as they do in the tests."""

from __future__ import annotations

import threading
from typing import Iterable, Optional
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

# Why an error was counted; every kind is exported from the start (at 0) so that
# rate() over it works before the first one happens.
ERROR_KINDS = (
    # the SMSC refused an SMS for good (its error code went back to the PC user)
    "smsc_rejected",
    # the SMSC's delivery report says the phone never got a chat (failed, expired)
    "sms_undelivered",
    # the communication buffer refused an SMS (no link serves the number, too long)
    "send_refused",
    # a chat longer than the SMS parts allowed
    "chat_too_long",
    # a chat to a contact that is not a phone number
    "bad_contact",
    # the XMPP server bounced a chat from a phone (its sender gets an SMS about it)
    "chat_undelivered",
    # an SMS from a sender that is not a usable phone number, dropped
    "bad_sender",
    # an exception while handling an SMS or a buffer event (see the log)
    "internal",
)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.xmpp_connected = Gauge(
            "smslink_gateway_xmpp_connected",
            "1 while the component is connected to the XMPP server",
            registry=r,
        )
        self.users_online = Gauge(
            "smslink_gateway_users_online",
            "PC users the gateway sees online (buddies of phone users, from their presence)",
            registry=r,
        )
        self.chats = Counter(
            "smslink_gateway_chats",
            "Chats from PC users to phones taken for sending",
            registry=r,
        )
        self.sms_in = Counter(
            "smslink_gateway_sms_in",
            "SMS received from phones (counted once stored in the gateway's file)",
            ["link"],
            registry=r,
        )
        self.sms_out = Counter(
            "smslink_gateway_sms_out",
            "SMS handed to the communication buffer (chat parts and command answers)",
            ["link"],
            registry=r,
        )
        self.outbox_waiting = Gauge(
            "smslink_gateway_outbox_waiting",
            "SMS waiting in the gateway's outbox for room in a full ring",
            registry=r,
        )
        self.errors = Counter(
            "smslink_gateway_errors",
            "Errors by kind: " + ", ".join(ERROR_KINDS),
            ["kind"],
            registry=r,
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        # The same name and meaning as the buffer server's and im-endpoint's gauge,
        # so one alert rule covers every node's links.
        self.link_up = Gauge(
            "smslink_link_up",
            "1 while the link to the buffer server is up (from the endpoint's events)",
            ["link"],
            registry=r,
        )
        self._server: Optional[WSGIServer] = None
        self._thread: Optional[threading.Thread] = None

    def expect_links(self, links: Iterable[str]) -> None:
        """Export these links as down until their first event says otherwise (a link
        that never comes up must show, not be absent)."""
        for link in links:
            self.link_up.labels(link)

    def error(self, kind: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        self.errors.labels(kind).inc()

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port from a thread of its own; returns the port
        (useful with port 0)."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def parse_listen(spec: str) -> tuple[str, int]:
    """`127.0.0.1:9103`, `[::1]:9103` or `:9103` (all interfaces) -> (host, port)."""
    host, colon, port = spec.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {spec!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)

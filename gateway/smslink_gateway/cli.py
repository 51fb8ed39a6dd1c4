"""`smslink-gateway`: run the component against an XMPP server and one or more
buffer servers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from typing import Any, Optional

import smslink

from .component import Gateway, Route
from .metrics import GatewayMetrics, parse_listen
from .store import Store


TLS_OPTIONS = ("tls-cert", "tls-key", "tls-ca", "tls-peer-fingerprint", "tls-server-name")


def parse_link(spec: str) -> dict[str, Any]:
    """`name=au,dial=bs.example.net:7000,psk-file=/etc/smslink/au.psk,prefixes=+61;+64[,default]`
    with `tls-cert=..,tls-key=..,tls-peer-fingerprint=..` (or `tls-ca=..`), or
    `insecure-plaintext` to run the link without TLS."""
    out: dict[str, Any] = {"prefixes": [], "default": False}
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq:
            if key == "default":
                out["default"] = True
                continue
            if key == "insecure-plaintext":
                out["insecure-plaintext"] = True
                continue
            raise argparse.ArgumentTypeError(f"link option {key!r} needs a value")
        if key == "prefixes":
            out["prefixes"] = [p for p in value.split(";") if p]
        elif key in ("name", "dial", "listen", "psk", "psk-file", "capacity", *TLS_OPTIONS):
            out[key] = value
        else:
            raise argparse.ArgumentTypeError(f"unknown link option {key!r}")
    if "name" not in out or ("dial" not in out and "listen" not in out):
        raise argparse.ArgumentTypeError("a link needs name= and dial= (or listen=)")
    if "psk-file" in out:
        with open(out.pop("psk-file"), "rb") as f:
            out["psk"] = f.read().strip()
    if "psk" not in out:
        raise argparse.ArgumentTypeError("a link needs psk= or psk-file=")
    return out


def build_endpoint(
    links: list[dict[str, Any]],
    journal_dir: Optional[str] = None,
    journal_sync: str = "always",
    reassembly_timeout: float = 600.0,
) -> smslink.Endpoint:
    """The endpoint toward the buffer servers; with `journal_dir`, its rings are kept
    in a journal there, so that a crash of the gateway loses no message it took. The
    parts of a long SMS that do not all come within `reassembly_timeout` seconds are
    delivered as they are, marked incomplete."""
    made = []
    for spec in links:
        kw: dict[str, Any] = {"prefixes": spec["prefixes"], "default": spec["default"]}
        for key in ("dial", "listen"):
            if key in spec:
                kw[key] = spec[key]
        if "capacity" in spec:
            kw["capacity"] = int(spec["capacity"])
        for key in TLS_OPTIONS:
            if key in spec:
                kw[key.replace("-", "_")] = spec[key]
        if spec.get("insecure-plaintext"):
            kw["insecure_plaintext"] = True
        psk = spec["psk"]
        made.append(smslink.Link(spec["name"], psk if isinstance(psk, bytes) else psk.encode(), **kw))
    endpoint: smslink.Endpoint = smslink.Endpoint(
        made,
        journal_dir=journal_dir,
        journal_sync=journal_sync,
        reassembly_timeout=reassembly_timeout,
    )
    return endpoint


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="smslink-gateway", description=__doc__)
    p.add_argument("--jid", required=True, help="component JID, e.g. sms.example.org")
    p.add_argument(
        "--secret",
        default=os.environ.get("SMSLINK_GATEWAY_SECRET"),
        help="component secret (or env SMSLINK_GATEWAY_SECRET)",
    )
    p.add_argument("--server", default="127.0.0.1", help="XMPP server host (component port)")
    p.add_argument("--port", type=int, default=5347)
    p.add_argument("--user-domain", help="domain of PC users (default: the component's parent)")
    p.add_argument("--sms-number", required=True, help="the number phones see and reply to")
    p.add_argument("--db", required=True, help="SQLite file for rosters, inbox and outbox")
    p.add_argument(
        "--link",
        action="append",
        type=parse_link,
        required=True,
        help="name=..,dial=host:port,psk-file=..,tls-cert=..,tls-key=..,"
        "tls-peer-fingerprint=.. (or tls-ca=..; or insecure-plaintext),"
        "prefixes=+61;+64[,default]; repeatable",
    )
    p.add_argument(
        "--away-after",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="show phone contacts away once their link has been down this long (default 3)",
    )
    p.add_argument(
        "--metrics-listen",
        type=_listen_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off)",
    )
    p.add_argument(
        "--journal-dir",
        metavar="DIR",
        help="keep the link rings in a journal in DIR (one per gateway), so that a crash "
        "loses no message taken (default: RAM only)",
    )
    p.add_argument(
        "--journal-sync",
        default="always",
        metavar="POLICY",
        help="always (default), interval:<ms> or off: when the journal is synced to disk",
    )
    p.add_argument(
        "--reassembly-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="deliver a long SMS whose parts have not all come within SECONDS as it is, "
        "marked incomplete (default: 600)",
    )
    p.add_argument(
        "--redis",
        metavar="URL",
        help="run as one of several gateway instances coordinated through this Redis "
        "(e.g. redis://10.0.0.5:6379/0): each link is driven by one instance at a time, "
        "on its journal in --journal-dir/<link>, which every instance must reach, and "
        "--db is shared by all (default: a single gateway)",
    )
    p.add_argument(
        "--instance",
        default=socket.gethostname(),
        help="this instance's name among several (unique; default: the host name)",
    )
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with --redis: a link moves this long after its instance stopped (default 5)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not args.secret:
        p.error("--secret or SMSLINK_GATEWAY_SECRET is required")
    if args.redis and not args.journal_dir:
        p.error("--redis needs --journal-dir (each link's journal moves with the link)")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_run(args))
    except Exception as e:
        # Configuration and network errors (bad link option, port in use, ...)
        # are for the operator to read, not a traceback.
        if isinstance(e, (smslink.SmslinkError, OSError)):
            p.exit(1, f"smslink-gateway: {e}\n")
        raise


def _listen_address(spec: str) -> tuple[str, int]:
    try:
        return parse_listen(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


async def _run(args: argparse.Namespace) -> None:
    metrics = GatewayMetrics()
    if args.metrics_listen is not None:
        metrics.serve(*args.metrics_listen)
    try:
        await _serve(args, metrics)
    finally:
        metrics.close()


async def _run_until_signalled(gw: Gateway) -> None:
    """Run the gateway until SIGINT or SIGTERM, then stop it in order."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    gw.start()
    await done.wait()
    await gw.stop()


async def _serve(args: argparse.Namespace, metrics: GatewayMetrics) -> None:
    if args.redis:
        await _serve_cluster(args, metrics)
        return
    endpoint = build_endpoint(
        args.link, args.journal_dir, args.journal_sync, args.reassembly_timeout
    )
    store = Store(args.db)
    gw = Gateway(
        args.jid,
        args.secret,
        args.server,
        args.port,
        endpoint=endpoint,
        store=store,
        sms_number=args.sms_number,
        routes=None,  # the endpoint routes by the same prefixes
        user_domain=args.user_domain,
        down_grace=args.away_after,
        metrics=metrics,
    )
    await _run_until_signalled(gw)
    endpoint.close()
    store.close()


async def _serve_cluster(args: argparse.Namespace, metrics: GatewayMetrics) -> None:
    import redis.asyncio as aioredis

    from .cluster import ClusterGateway

    specs = {spec["name"]: spec for spec in args.link}

    def make_endpoint(link: str) -> smslink.Endpoint:
        return build_endpoint(
            [specs[link]],
            os.path.join(args.journal_dir, link),
            args.journal_sync,
            args.reassembly_timeout,
        )

    # Replies must come within a renewal interval, or the links stop (self-fencing).
    r = aioredis.Redis.from_url(args.redis, socket_timeout=args.lease_ttl / 3)
    store = Store(args.db)
    gw = ClusterGateway(
        args.jid,
        args.secret,
        args.server,
        args.port,
        store=store,
        sms_number=args.sms_number,
        routes=[Route(s["name"], s["prefixes"], s["default"]) for s in args.link],
        user_domain=args.user_domain,
        down_grace=args.away_after,
        metrics=metrics,
        make_endpoint=make_endpoint,
        redis=r,
        instance=args.instance,
        lease_ttl=args.lease_ttl,
    )
    await _run_until_signalled(gw)
    await r.aclose()
    store.close()


if __name__ == "__main__":
    main()

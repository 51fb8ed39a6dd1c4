"""Test parts for several gateway instances: two ejabberd nodes in one Mnesia
cluster and a Redis, all on loopback with free ports and their own directories
(never the machine's own services), as docs/multi-node/cluster.sh sets them up."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from xmpp_harness import COMPONENT, DOMAIN, PASSWORD, SECRET, port_open, terminate

EJABBERDCTL = "/usr/sbin/ejabberdctl"


_PORT_LOW, _PORT_SPAN = 14_000, 6_000
_next_port = itertools.count(os.getpid() % _PORT_SPAN)


def server_port() -> int:
    """A port that was free a moment ago, for a server that binds it seconds later
    (ejabberd, epmd). Taken below the kernel's ephemeral range (32768 and up by
    default), where no connection and no `bind(0)` takes it meanwhile, and never
    the same twice in one run."""
    for _ in range(_PORT_SPAN):
        port = _PORT_LOW + next(_next_port) % _PORT_SPAN
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORT_LOW}..{_PORT_LOW + _PORT_SPAN}")


def _wait(cond: Callable[[], bool], deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class EjabberdCluster:
    """Nodes 1 and 2 (indices 0 and 1 of the port lists), with their own epmd."""

    dir: Path
    epmd_port: int
    c2s_ports: list[int]
    component_ports: list[int]
    names: list[str] = field(default_factory=list)
    started: list[int] = field(default_factory=list)

    def ctl(self, n: int, *args: str, timeout: float = 60) -> str:
        d = self.dir / f"n{n}"
        try:
            out = subprocess.run(
                [
                    EJABBERDCTL,
                    "--config-dir", str(d / "cfg"),
                    "--node", self.names[n],
                    "--spool", str(d / "spool"),
                    "--logs", str(d / "log"),
                    *args,
                ],
                env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)},
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(
                f"ejabberdctl {' '.join(args)} on {self.names[n]}: no answer in {timeout} s\n"
                + self.log(n)
            ) from e
        if out.returncode != 0:
            raise RuntimeError(
                f"ejabberdctl {' '.join(args)} on {self.names[n]}: "
                f"{out.stdout.decode()}{out.stderr.decode()}{self.log(n)}"
            )
        return out.stdout.decode()

    def write_config(self, n: int) -> None:
        d = self.dir / f"n{n}"
        for sub in ("spool", "log", "cfg"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "cfg" / "ejabberd.yml").write_text(
            f"""hosts:
  - {DOMAIN}
loglevel: info
certfiles: []
listen:
  -
    port: {self.c2s_ports[n]}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  -
    port: {self.component_ports[n]}
    ip: "127.0.0.1"
    module: ejabberd_service
    password: {SECRET}
auth_method: internal
access_rules:
  local:
    allow: all
  c2s:
    allow: all
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_offline: {{}}
"""
        )
        (d / "cfg" / "ejabberdctl.cfg").write_text(
            f"""ERLANG_NODE={self.names[n]}
INET_DIST_INTERFACE=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
EJABBERD_PID_PATH={d}/ejabberd.pid
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
"""
        )
        (d / "cfg" / "inetrc").touch()

    def start(self, users: list[str]) -> None:
        for n in (0, 1):
            self.write_config(n)
        # ejabberdctl runs the node as the ejabberd user, which must own the tree.
        shutil.chown(self.dir, "ejabberd", "ejabberd")
        for root, dirs, files in os.walk(self.dir):
            for name in dirs + files:
                shutil.chown(os.path.join(root, name), "ejabberd", "ejabberd")
        for n in (0, 1):
            self.ctl(n, "start")
            self.started.append(n)
        for n in (0, 1):
            self.ctl(n, "started", timeout=30)
        self.ctl(1, "join_cluster", self.names[0])
        self.ctl(1, "started", timeout=30)
        for user in users:
            self.ctl(0, "register", user, DOMAIN, PASSWORD)
        for port in self.c2s_ports + self.component_ports:
            _wait(lambda: port_open(port), 30, f"ejabberd port {port}")

    def stop(self) -> None:
        for n in self.started:
            try:
                self.ctl(n, "stop", timeout=30)
            except RuntimeError:
                pass
        for n in self.started:
            try:
                self.ctl(n, "stopped", timeout=30)
            except RuntimeError:
                pass
            # Whatever did not stop goes now (its pid is in its own pid file).
            pid_file = self.dir / f"n{n}" / "ejabberd.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
                except (ValueError, ProcessLookupError):
                    pass
        self.started.clear()
        subprocess.run(
            ["epmd", "-kill"],
            env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)},
            capture_output=True,
            timeout=10,
        )
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self, n: int) -> str:
        p = self.dir / f"n{n}" / "log" / "error.log"
        return p.read_text() if p.exists() else ""


def start_ejabberd_cluster(users: list[str], attempts: int = 3) -> EjabberdCluster:
    if not os.path.exists(EJABBERDCTL):
        raise RuntimeError("ejabberd is not installed (apt-get install ejabberd)")
    for attempt in range(attempts):
        # Not under pytest's tmp_path: the ejabberd user must be able to reach it.
        d = Path(tempfile.mkdtemp(prefix="smslink-ejabberd-"))
        tag = f"t{os.getpid()}a{attempt}"
        c = EjabberdCluster(
            d,
            server_port(),
            [server_port(), server_port()],
            [server_port(), server_port()],
            names=[f"{tag}n1@localhost", f"{tag}n2@localhost"],
        )
        try:
            c.start(users)
            return c
        except RuntimeError as e:
            c.stop()
            # A free port taken by another program before ejabberd bound it: again,
            # with other ports.
            if "eaddrinuse" not in str(e) or attempt + 1 == attempts:
                raise
        except BaseException:
            c.stop()
            raise
    raise AssertionError("unreachable")


@dataclass
class RedisServer:
    dir: Path
    port: int
    proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # Nothing here outlives the test: no snapshots, no append-only file.
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc = self.proc
        _wait(lambda: port_open(self.port) or proc.poll() is not None, 20, "redis")
        if proc.poll() is not None:
            raise RuntimeError("redis-server exited")

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None


def start_redis(tmp: Path) -> RedisServer:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    r = RedisServer(tmp, server_port())
    r.start()
    return r


__all__ = ["COMPONENT", "EjabberdCluster", "RedisServer", "start_ejabberd_cluster", "start_redis"]

"""An emulated mobile link (issue 9): a network namespace whose only way to the servers is a
packet pipe with a rate, a one-way delay and random loss in each direction.

This kernel has `tbf` but no `netem` (no delay, no loss), so the pipe is two TUN devices joined
by a small loop in its own process (`python -m benchmarks.link`): TCP stays real on both ends
(handshake, slow start, loss recovery over the emulated RTT); only the wire is emulated. The
servers keep listening on 127.0.0.1: a relay on the root side of the pipe forwards each
connection to them (Orthanc, which answers loopback only, sees a local client). Needs root.
"""
from __future__ import annotations

import collections
import ctypes
import fcntl
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Self

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class LinkProfile:
    name: str
    down_bps: float
    up_bps: float
    rtt_ms: float
    loss: float                 # per packet, each direction
    queue_ms: float = 400.0     # a modem's buffer: tail drop beyond this queueing delay


POOR_4G = LinkProfile("4G poor", 8e6, 2e6, 80.0, 0.005)


def unavailable() -> str | None:
    """Why the link cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, TUN devices)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if shutil.which("ip") is None:
        return "no ip (iproute2)"
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", ns, "ip"] if ns else ["ip"]) + list(args)
    subprocess.run(cmd, check=True, capture_output=True)


class ShapedLink:
    """The namespace, the pipe process and the relays; a context manager."""

    def __init__(self, profile: LinkProfile = POOR_4G, seed: int = 9) -> None:
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.profile, self.seed = profile, seed
        self.ns = f"yy-link-{tag}"
        self.server_dev, self.client_dev = f"yyS{tag}", f"yyC{tag}"
        net = f"10.{random.randrange(64, 250)}.{random.randrange(1, 250)}"
        self.server_ip, self.client_ip = f"{net}.1", f"{net}.2"
        self.proc: subprocess.Popen[str] | None = None
        self._listeners: list[socket.socket] = []

    def __enter__(self) -> Self:
        subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True)
        p = self.profile
        cmd = [sys.executable, "-m", "benchmarks.link", self.ns, self.server_dev, self.client_dev,
               self.server_ip, self.client_ip, str(p.down_bps), str(p.up_bps), str(p.rtt_ms),
               str(p.loss), str(p.queue_ms), str(self.seed)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.__exit__()
            raise RuntimeError(f"the link pipe did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self._listeners:
            sock.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)

    def relay(self, port: int) -> int:
        """A port on the link's server side that forwards each connection to 127.0.0.1:port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.server_ip, 0))
        listener.listen(64)
        self._listeners.append(listener)
        threading.Thread(target=_accept, args=(listener, port), daemon=True).start()
        return int(listener.getsockname()[1])

    def run(self, cmd: list[str], timeout: float, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (the client's side of the link)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ), check=False, input=stdin)


def _accept(listener: socket.socket, port: int) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", port))
        for s in (conn, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(conn, upstream), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (src, dst):
            s.close()


# --- the pipe process ---------------------------------------------------------------------

def _tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _tun_in(ns: str, name: str) -> int:
    """A TUN device created inside the namespace (setns for this thread, then back)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            return _tun(name)
        finally:
            libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(home)
        os.close(target)


class _Direction:
    """One direction of the wire: serialisation at `bps`, then `delay` s, random loss, tail drop."""

    def __init__(self, bps: float, delay: float, loss: float, queue: float, rng: random.Random) -> None:
        self.bps, self.delay, self.loss, self.queue, self.rng = bps, delay, loss, queue, rng
        self.free_at = 0.0
        self.flight: collections.deque[tuple[float, bytes]] = collections.deque()

    def offer(self, packet: bytes, now: float) -> None:
        if self.rng.random() < self.loss:
            return
        start = max(now, self.free_at)
        if start - now > self.queue:
            return
        self.free_at = start + len(packet) * 8 / self.bps
        self.flight.append((self.free_at + self.delay, packet))

    def due(self, now: float) -> list[bytes]:
        out = []
        while self.flight and self.flight[0][0] <= now:
            out.append(self.flight.popleft()[1])
        return out


def pipe_main(argv: list[str]) -> None:
    ns, sdev, cdev, sip, cip = argv[:5]
    down, up, rtt, loss, queue = (float(a) for a in argv[5:10])
    rng = random.Random(int(argv[10]))
    server_fd = _tun(sdev)
    client_fd = _tun_in(ns, cdev)
    _ip("addr", "add", sip, "peer", cip, "dev", sdev)
    _ip("link", "set", sdev, "up")
    _ip("addr", "add", cip, "peer", sip, "dev", cdev, ns=ns)
    _ip("link", "set", cdev, "up", ns=ns)
    _ip("link", "set", "lo", "up", ns=ns)
    half = rtt / 2000
    # server -> client is the download
    to_client = _Direction(down, half, loss, queue / 1000, rng)
    to_server = _Direction(up, half, loss, queue / 1000, rng)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    routes = {server_fd: (to_client, client_fd), client_fd: (to_server, server_fd)}
    while True:
        now = time.monotonic()
        pending = [d.flight[0][0] for d in (to_client, to_server) if d.flight]
        wait = max(min(pending) - now, 0) if pending else 0.5
        readable, _, _ = select.select([server_fd, client_fd], [], [], wait)
        now = time.monotonic()
        for fd in readable:
            direction, _ = routes[fd]
            while True:
                try:
                    direction.offer(os.read(fd, 65536), now)
                except BlockingIOError:
                    break
        for direction, out in ((to_client, client_fd), (to_server, server_fd)):
            for packet in direction.due(now):
                try:
                    os.write(out, packet)
                except OSError:
                    pass  # the other side is gone or full: as a lost packet


if __name__ == "__main__":
    pipe_main(sys.argv[1:])

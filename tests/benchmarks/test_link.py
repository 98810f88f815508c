"""The emulated link of the shaped-link figure: bytes pass intact, late by the RTT, at most at its rate."""
from __future__ import annotations

import hashlib
import socket
import sys
import threading

import pytest

from benchmarks.link import LinkProfile, ShapedLink, unavailable
from tests.conftest import missing_tool

if unavailable():
    missing_tool(f"no emulated link here: {unavailable()}", module=True)

PAYLOAD = hashlib.sha256(b"yunying").digest() * 8192  # 256 KiB

CLIENT = """
import hashlib, socket, sys, time
t0 = time.perf_counter()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
connected = time.perf_counter()
data = b""
while chunk := s.recv(65536):
    data += chunk
print(connected - t0, time.perf_counter() - connected, hashlib.sha256(data).hexdigest())
"""


def serve_once(data: bytes) -> int:
    """A loopback server that sends `data` to its first client and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = listener.accept()
        conn.sendall(data)
        conn.close()
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


@pytest.mark.parametrize("loss", [0.0, 0.02])
def test_link_delays_limits_and_keeps_bytes(loss: float) -> None:
    profile = LinkProfile("test", down_bps=8e6, up_bps=2e6, rtt_ms=80, loss=loss)
    with ShapedLink(profile, seed=3) as link:
        port = link.relay(serve_once(PAYLOAD))
        done = link.run([sys.executable, "-c", CLIENT, link.server_ip, str(port)], timeout=60)
    assert done.returncode == 0, done.stderr
    connect_s, transfer_s, digest = done.stdout.split()
    assert digest == hashlib.sha256(PAYLOAD).hexdigest()  # TCP recovers every lost packet
    assert float(connect_s) >= 0.075  # the handshake costs one round trip
    assert float(transfer_s) >= len(PAYLOAD) * 8 / 8e6  # never faster than the downlink rate

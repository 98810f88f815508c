"""Forwarding to a log collector (issue 12 part 3): RFC 5424 over TLS; records made while the
collector is down are sent, in order and complete, once it is back; serving never waits."""
from __future__ import annotations

import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from benchmarks.net import free_port
from tests.conftest import start_with_env
from tests.yunying.test_tls import make_pki


class Collector(threading.Thread):
    """A TLS syslog receiver (RFC 5425 octet-counted frames)."""

    def __init__(self, port: int, cert: str, key: str) -> None:
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", port))
        self.messages: list[bytes] = []

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                buf = b""
                while chunk := tls.recv(65536):
                    buf += chunk
                    while (m := re.match(rb"(\d+) ", buf)) and len(buf) >= m.end() + int(m.group(1)):
                        end = m.end() + int(m.group(1))
                        self.messages.append(buf[m.end():end])
                        buf = buf[end:]


def test_records_wait_for_a_collector_that_is_down(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    port = free_port()
    srv = start_with_env(tmp_path / "data", YUNYING_AUDIT_SYSLOG=f"tls://127.0.0.1:{port}",
                         YUNYING_AUDIT_SYSLOG_CA=pki["ca"])
    try:
        with httpx.Client(base_url=srv.dicomweb_url, headers=srv.headers, timeout=30) as c:
            for i in range(5):  # the collector is down: every answer still comes at once
                t0 = time.monotonic()
                assert c.get(f"/studies/1.2.{i}/metadata").status_code == 404
                assert time.monotonic() - t0 < 2
        time.sleep(2)
        collector = Collector(port, pki["server_crt"], pki["server_key"])
        collector.start()
        deadline = time.monotonic() + 60
        while len(collector.messages) < 6 and time.monotonic() < deadline:  # 5 + the start-up probe
            time.sleep(0.3)
    finally:
        srv.stop()
    msgs = collector.messages
    assert len(msgs) >= 6
    seqs = [int(s.group(1)) for m in msgs if (s := re.search(rb'seq="(\d+)"', m))]
    assert seqs == list(range(1, len(msgs) + 1))  # in order, none lost, none twice
    for m in msgs:
        assert re.match(rb"<10[89]>1 \d{4}-\d\d-\d\dT[\d:.]+\+00:00 \S+ yunying - \S+ \[yunying@32473 ", m)
        ET.fromstring(m.split(b"\xef\xbb\xbf", 1)[1])  # the MSG is a DICOM audit message
    assert sum(b"1.2.3" in m or b'action="metadata"' in m for m in msgs) >= 5

"""Transport security (issue 12 part 7): `yunying serve --tls-cert/--tls-key` serves HTTPS with
TLS 1.2+ and HSTS; the DIMSE SCP speaks DICOM TLS on dimse_tls_port, with client certificates
required when tls_client_ca is set; tested with DCMTK's +tls tools and pynetdicom."""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydicom import Dataset, dcmread
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # pynetdicom makes its SOP classes at import time
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from benchmarks.net import REPO_ROOT, free_port, stop_process
from tests.conftest import pydicom_path
from yunying.tls import client_context, server_context

DCMTK = Path("/usr/bin")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(key_path, 0o600)
    return str(key_path), str(cert_path)


def make_pki(d: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all made here."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": _write(d / "ca", ca_key, ca)[1]}
    server_use = [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]  # also our SCU's
    for name, usage in (("server", server_use), ("client", [x509.ExtendedKeyUsageOID.CLIENT_AUTH])):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if name == "server":
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
        out[name + "_key"], out[name + "_crt"] = _write(d / name, key, b.sign(ca_key, hashes.SHA256()))
    return out


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    d = tmp_path_factory.mktemp("tls")
    pki = make_pki(d)
    http_port, dimse_port, tls_port, dest_port = free_port(), free_port(), free_port(), free_port()
    received: list[str] = []
    dest = AE(ae_title="TLSDEST")  # a peer that is reached over DICOM TLS only, asking for our certificate
    dest.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    def on_store(event: evt.Event) -> int:
        assert isinstance(event.request, C_STORE)
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    dest_server = dest.start_server(
        ("127.0.0.1", dest_port), block=False, ssl_context=server_context(pki["server_crt"], pki["server_key"], pki["ca"]),
        evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert dest_server is not None  # block=False: the server thread
    (d / "peers.json").write_text(json.dumps({"TLSSCU": ["127.0.0.1", 104], "TLSDEST": {
        "host": "127.0.0.1", "port": dest_port, "tls": True}}))
    key = "yk_tls_" + secrets.token_urlsafe(16)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "YUNYING_API_KEY": key,
           "YUNYING_DIMSE_TLS_PORT": str(tls_port), "YUNYING_TLS_CLIENT_CA": pki["ca"]}
    log = open(d / "server.log", "wb")  # noqa: SIM115 - open while the server runs
    proc = subprocess.Popen([sys.executable, "-m", "yunying.cli", "serve", "--data", str(d / "data"),
                             "--host", "127.0.0.1", "--http-port", str(http_port), "--dimse-port", str(dimse_port),
                             "--peers", str(d / "peers.json"), "--tls-cert", pki["server_crt"],
                             "--tls-key", pki["server_key"]], env=env, stdout=log, stderr=log)
    url = f"https://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", verify=client_context(pki["ca"]), timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (d / "server.log").read_text()[-3000:]
        time.sleep(0.2)
    try:
        yield {**pki, "url": url, "http_port": http_port, "tls_port": tls_port, "key": key, "dir": d,
               "received": received}
    finally:
        stop_process(proc)
        log.close()
        dest_server.shutdown()


def test_https_with_hsts(tls_server: dict) -> None:
    ctx = client_context(tls_server["ca"])
    r = httpx.get(tls_server["url"] + "/dicomweb/studies", verify=ctx,
                  headers={"Authorization": f"Bearer {tls_server['key']}"})
    assert r.status_code in (200, 204)
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert r.headers["x-content-type-options"] == "nosniff"


def test_tls_1_2_or_newer_and_no_plain_http(tls_server: dict) -> None:
    capped = client_context(tls_server["ca"])
    capped.maximum_version = ssl.TLSVersion.TLSv1_2  # a TLS 1.2 client is served
    assert httpx.get(tls_server["url"] + "/health", verify=capped).status_code == 200
    ctx = server_context(tls_server["server_crt"], tls_server["server_key"])
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2  # older versions are not offered at all
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server['http_port']}/health")


def dcmtk(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DCMTK / tool), "-aet", "TLSSCU", "-aec", "YUNYING", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})


def test_dcmtk_echo_store_and_find_over_dicom_tls(tls_server: dict, tmp_path: Path) -> None:
    t = tls_server
    auth = ["+tls", t["client_key"], t["client_crt"], "+cf", t["ca"]]
    where = ["127.0.0.1", str(t["tls_port"])]
    echo = dcmtk("echoscu", *auth, *where)
    assert echo.returncode == 0, echo.stdout + echo.stderr
    ct = pydicom_path("CT_small.dcm")
    store = dcmtk("storescu", *auth, *where, str(ct))
    assert store.returncode == 0, store.stdout + store.stderr
    find = dcmtk("findscu", *auth, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
                 "-X", "-od", str(tmp_path), *where)
    assert find.returncode == 0, find.stdout + find.stderr
    assert list(tmp_path.glob("rsp*.dcm")), "the stored study is found over TLS"


def test_a_peer_without_a_client_certificate_is_refused(tls_server: dict) -> None:
    t = tls_server
    anon = dcmtk("echoscu", "+tla", "+cf", t["ca"], "127.0.0.1", str(t["tls_port"]))
    assert anon.returncode != 0
    plain = dcmtk("echoscu", "127.0.0.1", str(t["tls_port"]))  # no TLS at all on the TLS port
    assert plain.returncode != 0


def test_pynetdicom_scu_over_tls(tls_server: dict) -> None:
    t = tls_server
    ae = AE(ae_title="TLSSCU")
    ae.add_requested_context(Verification)
    ctx = client_context(t["ca"], t["client_crt"], t["client_key"])
    assoc = ae.associate("127.0.0.1", t["tls_port"], ae_title="YUNYING", tls_args=(ctx, "127.0.0.1"))
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def test_c_move_to_a_peer_over_dicom_tls(tls_server: dict) -> None:
    t = tls_server
    ae = AE(ae_title="TLSSCU")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    ctx = client_context(t["ca"], t["client_crt"], t["client_key"])
    assoc = ae.associate("127.0.0.1", t["tls_port"], ae_title="YUNYING", tls_args=(ctx, "127.0.0.1"))
    assert assoc.is_established
    ct = dcmread(pydicom_path("CT_small.dcm"))
    assert assoc.send_c_store(ct).Status == 0
    q = Dataset()
    q.QueryRetrieveLevel, q.StudyInstanceUID = "STUDY", ct.StudyInstanceUID
    statuses = [s for s, _ in assoc.send_c_move(q, "TLSDEST", StudyRootQueryRetrieveInformationModelMove)]
    assoc.release()
    assert statuses[-1].Status == 0, statuses[-1]
    assert ct.SOPInstanceUID in t["received"]  # sent by our SCU over TLS, with our certificate

"""TLS contexts for HTTPS and DICOM TLS (issue 12 part 7; PS3.15 Annex B.9/B.11 BCP 195 profiles):
TLS 1.2 or newer only, OpenSSL's default cipher list at its default security level."""
from __future__ import annotations

import ssl

from yunying.settings import SettingError


def server_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """A server context; with `client_ca`, a peer must present a certificate that CA signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(f"tls_cert / tls_key / tls_client_ca: {type(exc).__name__}: {exc}") from None
    return ctx


def client_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client context verifying the server against `ca` (or the system's), optionally with our certificate."""
    ctx = ssl.create_default_context(cafile=ca or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx

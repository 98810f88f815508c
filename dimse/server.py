"""The SCP: one pynetdicom AE serving the archive (Verification, Storage, Q/R FIND/MOVE/GET)."""
from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pynetdicom import AE, evt
from pynetdicom import sop_class as sop
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from dimse import associations, fastrecv
from dimse.access import AccessPolicy, policy_for
from dimse.associations import quiet_pynetdicom
from dimse.audit_hooks import audited_query, audited_store
from dimse.echo_scp import on_c_echo
from dimse.find_scp import on_c_find
from dimse.get_scp import on_c_get
from dimse.move_scp import on_c_move
from dimse.persons import PersonMatching
from dimse.store_scp import IMPLEMENTATION, on_c_store
from dimse.syntaxes import NATIVE, STORAGE_SYNTAXES
from dimse.uids import QR_MODELS, VERIFICATION
from yunying.settings import Settings

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

QUERY_SYNTAXES = NATIVE


def storage_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows (PS3.4 Annex B.5)."""
    return sorted({str(uid) for uid in sop._STORAGE_CLASSES.values()})


def build_ae(aet: str) -> AE:
    """The AE with every context we accept; storage contexts allow either role (C-GET)."""
    ae = AE(ae_title=aet)
    ae.maximum_associations = 64
    ae.maximum_pdu_size = 262144  # bounded PDUs from peers; DCMTK sends at most 128 KiB anyway
    ae.network_timeout = 300
    ae.acse_timeout = 30
    ae.dimse_timeout = 120
    ae.add_supported_context(VERIFICATION, QUERY_SYNTAXES)
    for model in QR_MODELS:
        ae.add_supported_context(model, QUERY_SYNTAXES)
    for uid in storage_classes():
        ae.add_supported_context(uid, STORAGE_SYNTAXES, scu_role=True, scp_role=True)
    return ae


class SharedContexts(list):  # type: ignore[type-arg]
    """The SCP's supported contexts, shared by every association.

    pynetdicom deep-copies them for each association (~50 ms for 177 classes x 34 syntaxes,
    measured here), yet only reads them during negotiation.
    """

    def __deepcopy__(self, memo: dict[int, object]) -> list[object]:
        return list(self)


@dataclass
class DimseServer:
    """A running SCP; `port` is the bound port (useful with dimse_port 0)."""

    ae: AE
    server: ThreadedAssociationServer
    policy: AccessPolicy
    tls_server: ThreadedAssociationServer | None = None  # DICOM TLS on settings.dimse_tls_port
    persons: PersonMatching | None = None  # C-FIND by person: its master index set once the app exists

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, abort open associations, and let handlers already running finish
        (so the archive can be closed after this returns)."""
        running = [a for a in self.ae.active_associations if a.is_acceptor]
        self.server.shutdown()
        if self.tls_server is not None:
            self.tls_server.shutdown()
        self.ae.shutdown()
        deadline = time.monotonic() + grace
        for assoc in running:
            assoc.join(max(0.0, deadline - time.monotonic()))


def on_established(event: Event, archive: Archive, policy: AccessPolicy, lean: bool, lend: bool = True) -> None:
    """EVT_ESTABLISHED: tally and log; then a storage association's P-DATA goes the lean way."""
    associations.on_established(event)
    if not (lean and fastrecv.eligible(event.assoc)):
        owner = associations.SocketOwner.of(event.assoc)
        if owner is not None:
            owner.decide()  # pynetdicom reads it all
        return
    aet = str(event.assoc.requestor.ae_title).strip()
    # a peer that may store is served by a lent ingest worker when there is one (issue 9):
    # it parses and writes; this thread decides each store (STORE) and answers through it
    fastrecv.serve(event.assoc, lambda ev: STORE(ev, archive, policy),
                   getattr(archive, "lease_worker", None) if lend and policy.may(aet, "store") else None,
                   (policy.origin(aet), aet, IMPLEMENTATION))


STORE = audited_store(on_c_store)  # the one C-STORE handler, whichever path received the message


def no_forced_collections(server: Any) -> None:
    """pynetdicom's server loop runs a full gc.collect() every 60th time round (each connection
    and each 0.5 s poll): with the catalog's rows in the heap that stalled every thread, ~9 % of
    the server's CPU under a C-FIND load (py-spy, issue 9). Python's own collector still frees
    the cycles dead associations leave, generation by generation."""
    server.service_actions = lambda: None


def _scu_tls(settings: Settings) -> ssl.SSLContext | None:
    """Our side of DICOM TLS to peers marked "tls": our certificate, theirs checked against tls_client_ca."""
    if not settings.tls_cert:
        return None
    from yunying.tls import client_context
    return client_context(settings.tls_client_ca, settings.tls_cert, settings.tls_key)


def start_dimse(archive: Archive, settings: Settings) -> DimseServer:
    """Start the SCP on settings.host:settings.dimse_port without blocking."""
    quiet_pynetdicom()
    ae = build_ae(settings.aet)
    policy = policy_for(settings.peers, settings.dimse_accept_all)
    peers = dict(settings.peers)
    persons = PersonMatching(archive)
    handlers = [
        (evt.EVT_CONN_OPEN, associations.set_nodelay),
        (evt.EVT_REQUESTED, policy.on_requested),
        (evt.EVT_ESTABLISHED, on_established, [archive, policy, settings.dimse_lean_store,
                                               settings.dimse_lend_workers]),
        (evt.EVT_CONN_CLOSE, associations.on_closed),
        (evt.EVT_C_ECHO, on_c_echo),
        (evt.EVT_C_STORE, STORE, [archive, policy]),
        (evt.EVT_C_FIND, audited_query(on_c_find, "query"), [archive, policy, settings.aet, persons]),
        (evt.EVT_C_MOVE, audited_query(on_c_move, "retrieve"), [archive, policy, peers, _scu_tls(settings)]),
        (evt.EVT_C_GET, audited_query(on_c_get, "retrieve"), [archive, policy]),
    ]
    server = ae.start_server((settings.host, settings.dimse_port), block=False,
                             evt_handlers=handlers)  # type: ignore[arg-type]
    assert server is not None  # block=False always returns the server
    server.contexts = SharedContexts(server.contexts)
    no_forced_collections(server)
    log.info("DIMSE SCP %s listening on %s:%d (%d storage classes, %d peers, accept_all=%s)",
             settings.aet, settings.host, server.server_address[1], len(storage_classes()),
             len(peers), settings.dimse_accept_all)
    tls_server = None
    if settings.dimse_tls_port:  # PS3.15 B.9: the same services over TLS, on a port of their own
        from yunying.tls import server_context
        tls_server = ae.start_server((settings.host, settings.dimse_tls_port), block=False,
                                     evt_handlers=handlers,  # type: ignore[arg-type]
                                     ssl_context=server_context(settings.tls_cert, settings.tls_key,
                                                                settings.tls_client_ca))
        assert tls_server is not None
        tls_server.contexts = SharedContexts(tls_server.contexts)
        no_forced_collections(tls_server)
        log.info("DICOM TLS on %s:%d (client certificates %s)", settings.host, settings.dimse_tls_port,
                 "required" if settings.tls_client_ca else "not asked for")
    return DimseServer(ae, server, policy, tls_server, persons)

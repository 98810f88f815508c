"""A pynetdicom Storage SCP whose answer the test switches: accept, refuse (0xA700), or stall."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, evt

from benchmarks.net import free_port


@dataclass
class FlakyScp:
    mode: str = "refuse"  # accept | refuse | stall
    stall_s: float = 5.0
    port: int = 0
    received: dict[str, str] = field(default_factory=dict)  # SOP Instance UID -> transfer syntax
    attempts: int = 0
    server: Any = None

    def start(self) -> FlakyScp:
        ae = AE(ae_title="FLAKY")
        ae.supported_contexts = AllStoragePresentationContexts
        self.port = free_port()
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        return self

    def _on_store(self, event: Any) -> int:
        self.attempts += 1
        if self.mode == "refuse":
            return 0xA700  # out of resources
        if self.mode == "stall":
            time.sleep(self.stall_s)
            return 0xA700
        self.received[str(event.request.AffectedSOPInstanceUID)] = str(event.context.transfer_syntax)
        return 0x0000

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()


def wait_for(check: Any, timeout: float = 60.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)



"""C-ECHO SCP (PS3.4 Annex A): open to every calling AE."""
from __future__ import annotations

from pynetdicom.events import Event

from dimse.associations import tally


def on_c_echo(event: Event) -> int:
    """EVT_C_ECHO: always success."""
    tally(event, "echo")
    return 0x0000

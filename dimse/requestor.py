"""Hardening for associations we request (SCU side and C-MOVE sub-operations).

pynetdicom 3.0.4's reactor can take a DIMSE message off the queue just as a send_*()
method pauses it (measured-facts: a C-FIND response lost every few hundred queries, then a
hang).  The reactor only ever serves *requests*; a response it takes is put back at the
head of the queue, where the waiting send_*() finds it.
"""
from __future__ import annotations

from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event

from dimse.associations import close_waker, set_nodelay


def requeue_responses(assoc: Association) -> None:
    """Make the reactor hand back any response it takes instead of dropping it."""
    serve = assoc._serve_request
    queue = assoc.dimse.msg_queue

    def serve_or_requeue(msg: Any, context_id: int) -> None:
        if msg is not None and not msg.is_valid_request:
            with queue.mutex:
                queue.queue.appendleft((context_id, msg))
                queue.not_empty.notify()
            return
        serve(msg, context_id)

    assoc._serve_request = serve_or_requeue  # type: ignore[method-assign]


def _on_established(event: Event) -> None:
    requeue_responses(event.assoc)


def _on_closed(event: Event) -> None:
    close_waker(event.assoc)


# Bound on every association we request: TCP_NODELAY and the DUL wake-ups on connect, the
# race fix once established.
HANDLERS: list[tuple[Any, Any]] = [(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_ESTABLISHED, _on_established),
                                   (evt.EVT_CONN_CLOSE, _on_closed)]

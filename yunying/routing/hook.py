"""The archive's one notification after an instance is stored (issue 15 parts 5 and 7).

`yunying.archive.Archive.store` calls `notify` once an instance's bytes are durable (and, with
wait, indexed) and it was stored or replaced, never for an identical resend, and before the
store call returns, so before any face acknowledges the instance. Observers (the routing queue,
the patient master index) must be quick and must not raise: an exception is logged and
swallowed, because the sender's store has succeeded whatever they do. The routing observer
returns once the instance's forwards are committed (a group commit shared by concurrent
stores): that is what makes forwarding survive a crash right after the acknowledgement.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from index.model import InstanceRecord

log = logging.getLogger("yunying.routing")
Observer = Callable[[InstanceRecord, Any], None]  # (record, archive.StoreResult)
_observers: WeakKeyDictionary[Any, list[Observer]] = WeakKeyDictionary()


def subscribe(archive: Any, observer: Observer) -> None:
    """Call `observer(record, result)` after each instance this archive stores."""
    _observers.setdefault(archive, []).append(observer)


def unsubscribe(archive: Any, observer: Observer) -> None:
    if observer in _observers.get(archive, []):
        _observers[archive].remove(observer)


def notify(archive: Any, record: InstanceRecord, result: Any) -> None:
    """Tell the archive's observers; never raises (no patient data logged)."""
    for observer in _observers.get(archive, ()):
        try:
            observer(record, result)
        except Exception as exc:  # noqa: BLE001 - the store has succeeded; say which observer failed
            log.error("stored-instance observer %s failed: %s", getattr(observer, "__qualname__", observer),
                      type(exc).__name__)

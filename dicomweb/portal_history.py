"""What reaches a portal patient: the bound exams and the person's history (yunying.portal.history),
less what the hospital withheld (delivery switched off per exam or per patient). One place, so the
exam code, the session, the exam list and share links all answer alike."""
from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from dicomweb.accounts import store_of
from yunying.portal import exams, history, patients, verify


def persons_of(request: Request) -> Any:
    """The app's master index (read through its API: person_of, members)."""
    from dicomweb.mpi_api import index_of

    return index_of(request)


def deliverable(request: Request, account: str) -> list[dict[str, Any]]:
    """The account's bound exams and linked history, newest binding first, linked ones last
    (blocking: call it in a thread)."""
    store, archive, persons = store_of(request), request.app.state.archive, persons_of(request)
    bound = verify.account_exams(store, account)
    hospitals = {e["hospital"] for e in bound}
    more = history.history_studies(archive, persons.engine, [e["study"] for e in bound], hospitals)
    off = patients.withheld(store, archive, persons, [e["study"] for e in bound] + more) | exams.off_studies(store, more)
    linked = []
    for study in more:
        owner = archive.owner(study)
        if study not in off and owner is not None:
            linked.append({"exam": None, "study": study, "hospital": owner[0], "accession": "", "bound_at": None,
                           "linked": True})
    return [e for e in bound if e["study"] not in off] + linked


async def session(request: Request, account: str) -> dict[str, Any]:
    """A patient access token seeing exactly what `deliverable` answers."""
    def mint() -> dict[str, Any]:
        return verify.session(store_of(request), account, deliverable(request, account))
    return await run_in_threadpool(mint)


def withheld(request: Request, studies: list[str]) -> set[str]:
    """The studies among `studies` withheld from patients, per exam or per patient (blocking)."""
    store = store_of(request)
    return patients.withheld(store, request.app.state.archive, persons_of(request), studies) | \
        exams.off_studies(store, studies)


async def require_delivered(request: Request, studies: list[str]) -> None:
    """DeliveryOff (410) when the hospital withheld one of `studies` from its patients."""
    off: set[str] = await run_in_threadpool(withheld, request, studies) if studies else set()
    if off:
        raise exams.DeliveryOff("online delivery of this exam is switched off by the hospital")

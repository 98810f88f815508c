"""Routing's HTTP API under /api/routing (issue 15 part 7): rules, the queue, retries, job status.
Rules and queue rows carry AE titles, URLs, UIDs and DIMSE/HTTP statuses: no patient data."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.accounts import call, field, json_body, json_response
from yunying import jobs as registry
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.routing import hook, jobs, manage
from yunying.routing.router import Router
from yunying.routing.senders import stow

R = "/api/routing"


def start(app: Any) -> Router:
    """The app's router, observing every stored instance. The composition root adds the C-STORE
    sender (dicomweb imports no DIMSE): `router.senders["dicom"] = dimse.forward.sender(aet)`."""
    router = getattr(app.state, "routing", None)
    if router is None:
        settings = app.state.settings
        router = Router(app.state.archive, app.state.auth.store.engine, {"dicomweb": stow},
                        attempts=settings.routing_attempts, backoff=settings.routing_backoff_seconds)
        app.state.routing = router
        hook.subscribe(app.state.archive, router)
        registry.register("routing", lambda: jobs.status(router))  # the jobs page and /metrics (part 8)
    return router


def stop(app: Any) -> None:
    router = getattr(app.state, "routing", None)
    if router is not None:
        registry.unregister("routing")
        hook.unsubscribe(app.state.archive, router)
        router.stop()


def router_of(request: Request) -> Router:
    return start(request.app)


def _id(request: Request) -> int:
    raw = request.path_params["rule"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise NotFound(f"rule {raw[:20]}: unknown")
    return int(raw)


def _query_int(request: Request, name: str, default: int | None, top: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest(f"{name}: a non-negative integer")
    return min(int(raw), top)


async def rule_list(request: Request) -> Response:
    router = router_of(request)
    if request.method == "POST":
        return json_response(await call(manage.create_rule, router, await json_body(request)), 201)
    return json_response(await call(manage.list_rules, router))


async def rule_item(request: Request) -> Response:
    router, rule_id = router_of(request), _id(request)
    if request.method == "DELETE":
        await call(manage.delete_rule, router, rule_id)
        return json_response({"deleted": rule_id})
    return json_response(await call(manage.update_rule, router, rule_id, await json_body(request)))


async def retry(request: Request) -> Response:
    rule_id = _id(request) if "rule" in request.path_params else None
    return json_response({"queued": await call(router_of(request).retry, rule_id)})


async def send_study(request: Request) -> Response:
    """POST {"study": uid}: forward a stored study by this rule now."""
    study = field(await json_body(request), "study")
    if not 0 < len(study) <= 64:
        raise InvalidRequest("study: a Study Instance UID")
    return json_response({"queued": await call(router_of(request).send_study, _id(request), study)})


async def queue_list(request: Request) -> Response:
    return json_response(await call(
        manage.queue_items, router_of(request), request.query_params.get("state", ""),
        _query_int(request, "rule", None, 10**9), _query_int(request, "limit", 100, 1000) or 100,
        _query_int(request, "offset", 0, 10**9) or 0))


def _item_ids(body: Any) -> list[int]:
    ids = body.get("items") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not 0 < len(ids) <= 1000 or not all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise InvalidRequest("items: a list of 1-1000 queue item ids")
    return ids


async def retry_items(request: Request) -> Response:
    """POST {"items": [id, ...]}: send these queue items now (404 unknown, 409 delivered)."""
    ids = _item_ids(await json_body(request))
    return json_response({"retried": await call(manage.retry_items, router_of(request), ids)})


async def drop_items(request: Request) -> Response:
    """POST {"items": [id, ...]}: give up on these queue items (kept as "dropped")."""
    ids = _item_ids(await json_body(request))
    return json_response({"dropped": await call(manage.drop_items, router_of(request), ids)})


async def pause(request: Request) -> Response:
    """GET the routing-wide pause switch; POST /pause or /resume sets it."""
    router = router_of(request)
    if request.method == "GET":
        return json_response({"paused": await call(manage.is_paused, router)})
    return json_response(await call(manage.set_paused, router, request.url.path.endswith("/pause")))


async def job_status(request: Request) -> Response:
    return json_response(await call(jobs.status, router_of(request)))


def routes() -> list[Route]:
    return [
        Route(R + "/rules", rule_list, methods=["GET", "POST"]),
        Route(R + "/rules/{rule}", rule_item, methods=["PUT", "DELETE"]),
        Route(R + "/rules/{rule}/retry", retry, methods=["POST"]),
        Route(R + "/rules/{rule}/send", send_study, methods=["POST"]),
        Route(R + "/retry", retry, methods=["POST"]),
        Route(R + "/queue", queue_list, methods=["GET"]),
        Route(R + "/queue/retry", retry_items, methods=["POST"]),
        Route(R + "/queue/drop", drop_items, methods=["POST"]),
        Route(R + "/paused", pause, methods=["GET"]),
        Route(R + "/pause", pause, methods=["POST"]),
        Route(R + "/resume", pause, methods=["POST"]),
        Route(R + "/jobs", job_status, methods=["GET"]),
    ]

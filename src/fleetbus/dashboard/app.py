"""The dashboard's web side: its pages, their live streams (server-sent events), the JSON API
and the actions — Starlette routes over a ``Hub``, behind the ``Guard``.

Each page is plain HTML from a template; ``static/dashboard.js`` fills it from the page's
stream, ``/api/live/{page}``: a first ``event`` with everything the page shows, then what
changes. The browser's ``EventSource`` reconnects by itself and then gets a fresh first
event. Nothing from the wire is ever put into the page as markup: the script sets text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fleetbus.dashboard.data import TaskFilters, TaskRow, update_json
from fleetbus.dashboard.guard import Guard
from fleetbus.dashboard.live import Hub, Subscriber
from fleetbus.errors import AmbiguousTask, FleetbusError, InvalidSubjectError
from fleetbus.wire.subjects import validate_id
from fleetbus.wire.updates import TaskState

__all__ = ["PAGES", "create_app"]

HERE = Path(__file__).parent
KEEPALIVE = 15.0
"""Seconds of silence after which a stream sends a comment (proxies close idle ones)."""

PAGES: list[tuple[str, str, str]] = [
    ("/", "overview", "Overview"),
    ("/agents", "agents", "Agents"),
    ("/tasks", "tasks", "Tasks"),
    ("/dead-letters", "dead-letters", "Dead letters"),
    ("/streams", "streams", "Streams and consumers"),
    ("/meetings", "meetings", "Meetings"),
    ("/events", "events", "Events"),
]
STATES: tuple[str, ...] = TaskState.__args__  # type: ignore[attr-defined]

Event = tuple[str, Any]
_T = TypeVar("_T")


def create_app(hub: Hub, *, token: str | None, host: str) -> Starlette:
    """The dashboard for ``hub``'s fleet. ``token``: required on every request (any bind
    but loopback); ``host``: the address it is bound to."""
    data = hub.data
    spec = data.spec
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        pages=PAGES, prefix=spec.prefix, roles=sorted(spec.roles), states=STATES
    )

    def page(name: str, title: str) -> Callable[[Request], Awaitable[Response]]:
        async def render(request: Request) -> Response:
            return templates.TemplateResponse(
                request, f"{name.replace('-', '_')}.html", {"page": name, "title": title}
            )

        return render

    async def task_page(request: Request) -> Response:
        task_id = _task_id(request)
        return templates.TemplateResponse(
            request,
            "task.html",
            {"page": "tasks", "title": f"Task {task_id}", "task_id": task_id},
        )

    # -- live streams ---------------------------------------------------------------------

    async def live_overview(request: Request) -> Response:
        return _live(hub, ["overview"], lambda: _one("overview", hub.overview()))

    async def live_agents(request: Request) -> Response:
        return _live(hub, ["agents"], lambda: _one("agents", hub.agents()))

    async def live_streams(request: Request) -> Response:
        return _live(hub, ["streams"], lambda: _one("streams", hub.streams()))

    async def live_tasks(request: Request) -> Response:
        filters = _task_filters(request)
        return _live(hub, ["tasks"], lambda: _one("tasks", hub.tasks(**filters)))

    async def live_task(request: Request) -> Response:
        task_id = _task_id(request)
        shown: set[str] = set()

        async def first() -> list[Event]:
            view = await _task_view(task_id)
            shown.update(_record_key(u) for u in view["timeline"])
            return [("task", view)]

        async def more(topic: str, payload: Any) -> list[Event]:
            if topic == "record":
                key = _record_key(payload["update"])
                if key in shown:
                    return []
                shown.add(key)
            return [(topic, payload)]

        return _live(hub, ["record"], first, more, task_id=task_id)

    async def live_dead_letters(request: Request) -> Response:
        async def first() -> list[Event]:
            return [("deadletters", await _letters())]

        async def more(topic: str, payload: Any) -> list[Event]:
            return await first() if topic == "deadletters" else [(topic, payload)]

        return _live(hub, ["deadletters"], first, more)

    async def live_meetings(request: Request) -> Response:
        return _live(hub, ["meeting"], lambda: _one("meetings", hub.meeting_view()))

    async def live_events(request: Request) -> Response:
        pattern = request.query_params.get("filter") or "events.>"
        try:
            data.tail_filters(pattern)
        except FleetbusError as exc:  # a bad pattern, or one the dashboard does not tail
            return JSONResponse({"error": str(exc)}, status_code=400)

        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            yield _event("tail-start", {"filter": pattern})
            async with data.tail(pattern) as lines:
                async for line in _with_keepalive(lines, hub.closing):
                    yield ": keepalive\n\n" if line is None else _event("line", line.to_json())

        return _sse(stream())

    # -- the JSON API and the actions -----------------------------------------------------

    async def api_overview(request: Request) -> Response:
        await hub.ready()
        return JSONResponse(hub.overview())

    async def api_tasks(request: Request) -> Response:
        await hub.tasks_ready.wait()
        return JSONResponse(hub.tasks(**_task_filters(request)))

    async def api_task(request: Request) -> Response:
        return JSONResponse(await _task_view(_task_id(request)))

    async def api_dead_letters(request: Request) -> Response:
        return JSONResponse(await _letters())

    async def api_dead_letter(request: Request) -> Response:
        entry = await data.dead_letter(_int(request, "id"))
        return JSONResponse(entry.to_json())

    async def api_replay(request: Request) -> Response:
        subject, seq = await data.replay(_int(request, "id"))
        hub.publish("deadletters", None)
        return JSONResponse({"replayed": _int(request, "id"), "subject": subject, "seq": seq})

    async def api_purge(request: Request) -> Response:
        purged = await data.purge_dead_letters()
        hub.publish("deadletters", None)
        return JSONResponse({"purged": purged})

    async def api_task_action(request: Request) -> Response:
        task_id = _task_id(request)
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise HTTPException(400, "an action's body is a JSON object")
        known = hub.index.of_task(task_id)
        if len(known) > 1:
            # Ids are the assigner's choice, and a role writes its own records under any id:
            # the page cannot show which one the admin means, so nothing is done here.
            raise HTTPException(409, AmbiguousTask(task_id, _tasks_of(known)).args[0])
        rows = [
            r
            for r in known
            if r.role == body.get("role", r.role) and r.assigner == body.get("assigner", r.assigner)
        ]
        if not rows:
            raise HTTPException(404, f"no task {task_id} known")
        result = await data.task_action(request.path_params["action"], rows[0], body)
        return JSONResponse({"done": request.path_params["action"], "result": result})

    async def _task_view(task_id: str) -> dict[str, Any]:
        await hub.tasks_ready.wait()
        timeline = [update_json(u) for u in await data.task_history(task_id)]
        rows: list[TaskRow] = hub.index.of_task(task_id)
        return {
            "task_id": task_id,
            "rows": [r.to_json() for r in rows],
            "timeline": timeline,
            "actions": data.task_actions(rows[0]) if len(rows) == 1 else [],
        }

    async def _letters() -> dict[str, Any]:
        entries = await data.dead_letter_list()
        return {
            "letters": [
                {
                    "id": e.id,
                    "time": e.time,
                    "original_subject": e.original_subject,
                    "seq": e.seq,
                    "consumer": e.consumer,
                    "deliveries": e.deliveries,
                    "reason": e.reason,
                    "error": e.error[:500],
                    "task_id": e.headers.get("Fleet-Task-Id", ""),
                }
                for e in reversed(entries)
            ],
            "available": data.spec.dead_letter_stream is not None,
        }

    routes = [
        *(Route(path, page(name, title)) for path, name, title in PAGES),
        Route("/tasks/{task_id}", task_page),
        Route("/api/live/overview", live_overview),
        Route("/api/live/agents", live_agents),
        Route("/api/live/streams", live_streams),
        Route("/api/live/tasks", live_tasks),
        Route("/api/live/tasks/{task_id}", live_task),
        Route("/api/live/dead-letters", live_dead_letters),
        Route("/api/live/meetings", live_meetings),
        Route("/api/live/events", live_events),
        Route("/api/overview", api_overview),
        Route("/api/tasks", api_tasks),
        Route("/api/tasks/{task_id}", api_task),
        Route("/api/tasks/{task_id}/actions/{action}", api_task_action, methods=["POST"]),
        Route("/api/dead-letters", api_dead_letters),
        Route("/api/dead-letters/purge", api_purge, methods=["POST"]),
        Route("/api/dead-letters/{id:int}", api_dead_letter),
        Route("/api/dead-letters/{id:int}/replay", api_replay, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, host=host)],
        exception_handlers={FleetbusError: _fleetbus_error},
    )


def _live(
    hub: Hub,
    topics: Iterable[str],
    first: Callable[[], Awaitable[list[Event]]],
    more: Callable[[str, Any], Awaitable[list[Event]]] | None = None,
    *,
    task_id: str | None = None,
) -> Response:
    """A page's stream: subscribe, wait until the hub has its first sample, send ``first()``,
    then every message for the topics (through ``more`` when given)."""

    async def stream() -> AsyncIterator[str]:
        with hub.subscribe(*topics, task_id=task_id) as sub:
            yield "retry: 2000\n\n"
            await hub.ready()
            for name, payload in await first():
                yield _event(name, payload)
            async for item in _with_keepalive(_messages(sub)):
                if item is None:
                    yield ": keepalive\n\n"
                    continue
                topic, payload = item
                if topic == "tasks-reset":
                    yield _event("reset", None)
                    return
                for name, value in await more(topic, payload) if more else [item]:
                    yield _event(name, value)

    return _sse(stream())


async def _messages(sub: Subscriber) -> AsyncIterator[tuple[str, Any]]:
    while (item := await sub.next()) is not None:
        yield item


async def _with_keepalive(
    items: AsyncIterator[_T], stop: asyncio.Event | None = None
) -> AsyncIterator[_T | None]:
    """``items``, and None after each ``KEEPALIVE`` seconds without one; ends when ``stop``
    is set (the dashboard shuts down)."""
    pending: asyncio.Task[_T] | None = None
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(items))
            waiting = {pending} if stopping is None else {pending, stopping}
            done, _ = await asyncio.wait(waiting, timeout=KEEPALIVE, return_when="FIRST_COMPLETED")
            if stopping is not None and stopping in done:
                return
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        for task in (pending, stopping):
            if task is not None:
                task.cancel()


async def _one(name: str, payload: Any) -> list[Event]:
    return [(name, payload)]


def _sse(stream: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _event(name: str, payload: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'), default=str)}\n\n"


def _record_key(update: dict[str, Any]) -> str:
    return json.dumps(update, sort_keys=True, default=str)


def _task_id(request: Request) -> str:
    try:
        return validate_id(request.path_params["task_id"])
    except InvalidSubjectError as exc:
        raise HTTPException(404, str(exc)) from None


def _task_filters(request: Request) -> TaskFilters:
    q = request.query_params
    try:
        limit = max(1, min(int(q.get("limit", "200")), 5000))
    except ValueError:
        limit = 200
    return {
        "role": q.get("role") or None,
        "state": q.get("state") or None,
        "text": q.get("q") or None,
        "limit": limit,
    }


def _int(request: Request, name: str) -> int:
    value = request.path_params[name]
    assert isinstance(value, int)
    return value


async def _fleetbus_error(request: Request, exc: Exception) -> Response:
    status = 404 if str(exc).startswith("no dead letter") else 400
    return JSONResponse({"error": str(exc)}, status_code=status)


def _tasks_of(rows: list[TaskRow]) -> list[tuple[str, str]]:
    return sorted({(r.role, r.assigner) for r in rows})

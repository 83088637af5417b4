"""Read the live server, plan against the fleet file, and apply the plan idempotently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace

from fleetbus.errors import JetStreamError, ProvisionError
from fleetbus.fleet import FleetSpec
from fleetbus.fleet.check import errors, summary
from fleetbus.js._natspy import server_info
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection, ConnectSettings, connect
from fleetbus.provision.plan import Action, LiveState, Plan, build_plan

__all__ = [
    "CONSUMERS_AT_ONCE",
    "ApplyResult",
    "apply_plan",
    "cluster_size",
    "provision",
    "provision_at",
    "read_live",
    "refusal",
]


CONSUMERS_AT_ONCE = 8
"""Consumer creates and updates in flight at once. The server runs JetStream API requests on
a worker per core (16 at most) and each create waits on its file store's write: measured on
nats-server 2.15.1 (2 cores, 3,000 consumers of one stream, raw nats-py), one at a time 4.7
and 6.9 s, 8 at once 3.0 and 3.8 s, 32 at once 4.4 s."""


def cluster_size(conn: Connection) -> int:
    """How many servers can hold replicas: 1 unless the server runs in a cluster."""
    info = server_info(conn.nc)
    if not info.get("cluster"):
        return 1
    urls = set(info.get("connect_urls") or [])
    return max(len(urls), 1)


async def read_live(api: JsApi, spec: FleetSpec, *, size: int, max_payload: int = 0) -> LiveState:
    """The configs of the fleet's streams (and any others) and their consumers;
    ``max_payload``, the server's, goes with them."""
    streams: dict[str, dict[str, object]] = {}
    messages: dict[str, int] = {}
    consumers: dict[tuple[str, str], dict[str, object]] = {}
    pending: dict[tuple[str, str], int] = {}
    for name in await api.stream_names():
        info = await api.stream_info(name)
        if info is None:
            continue
        streams[name] = info["config"]
        messages[name] = int(info.get("state", {}).get("messages", 0))
        if name not in spec.streams:
            continue
        for c in await api.consumers(name):
            cname = c["name"]
            if not c["config"].get("durable_name"):
                continue  # ephemeral consumers (tails, oversight) are not the fleet's
            consumers[(name, cname)] = c["config"]
            pending[(name, cname)] = int(c.get("num_pending", 0)) + int(c.get("num_ack_pending", 0))
    return LiveState(streams, messages, consumers, pending, size, max_payload)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    plan: Plan
    applied: tuple[Action, ...]
    skipped: tuple[Action, ...]
    """Recreates and migrates not done because ``force`` was not given."""


def refusal(spec: FleetSpec) -> ProvisionError | None:
    """Why ``spec`` is not provisioned at all (its ``fleetbus check`` errors), or None."""
    refused = errors(spec)
    if not refused:
        return None
    return ProvisionError(
        f"the fleet file has {len(refused)} error(s), so nothing was provisioned: "
        + summary(refused)
        + " (`fleetbus check` says how to fix each)"
    )


async def provision(
    conn: Connection,
    spec: FleetSpec,
    *,
    dry_run: bool = False,
    force: bool = False,
    on_action: Callable[[Action], None] | None = None,
) -> ApplyResult:
    """Plan the fleet against the server at ``conn`` and, unless ``dry_run``, apply it.

    A fleet file with errors (``fleetbus check``) is refused before anything is read or
    changed: half a fleet provisioned (a stream made before the server refused the next)
    would be worse than none."""
    problem = refusal(spec)
    if problem is not None:
        raise problem
    api = JsApi(conn)
    live = await read_live(api, spec, size=cluster_size(conn), max_payload=conn.max_payload)
    plan = build_plan(spec, live)
    if dry_run:
        return ApplyResult(plan, (), plan.needs_force if not force else ())
    return await apply_plan(api, plan, force=force, on_action=on_action)


async def provision_at(
    settings: ConnectSettings, spec: FleetSpec, *, force: bool = False
) -> ApplyResult:
    """``provision`` over a connection of its own, closed afterwards."""
    conn = await connect(settings)
    try:
        return await provision(conn, spec, force=force)
    finally:
        await conn.close()


async def apply_plan(
    api: JsApi,
    plan: Plan,
    *,
    force: bool = False,
    on_action: Callable[[Action], None] | None = None,
) -> ApplyResult:
    """Apply ``plan``: its streams one at a time, then its consumers, ``CONSUMERS_AT_ONCE``
    in flight. When the server refuses one, nothing more is sent, what was in flight ends,
    and the error names the refused action and what was applied."""
    if plan.conflicts:
        raise ProvisionError("; ".join(plan.conflicts) + " (nothing was applied)")
    applied: list[tuple[int, Action]] = []
    skipped: list[Action] = []
    recreated: set[str] = set()
    running: dict[asyncio.Future[None], tuple[int, Action]] = {}
    failed: list[tuple[Action, BaseException]] = []

    def settle(done: set[asyncio.Future[None]]) -> None:
        for task in sorted(done, key=lambda t: running[t][0]):
            position, action = running.pop(task)
            exc = task.exception()
            if exc is not None:
                failed.append((action, exc))
                continue
            applied.append((position, action))
            if on_action is not None:
                on_action(action)

    # Streams first: consumers need their stream.
    ordered = sorted(plan.actions, key=lambda a: a.kind != "stream")
    for position, action in enumerate(ordered):
        if failed:
            break
        if action.op in ("recreate", "migrate") and not force:
            skipped.append(action)
            continue
        if action.op == "unmanaged":
            continue
        if action.op == "unchanged":
            if action.kind == "stream" or action.stream not in recreated:
                continue
            # A recreated stream took its consumers with it: make them again.
            action = replace(action, op="create")
        if action.kind == "stream" and action.op == "recreate":
            recreated.add(action.name)
        running[asyncio.ensure_future(_apply_one(api, action))] = (position, action)
        if action.kind == "stream":
            settle((await asyncio.wait(running))[0])
        elif len(running) >= CONSUMERS_AT_ONCE:
            settle((await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED))[0])
    while running:
        settle((await asyncio.wait(running))[0])
    applied.sort(key=lambda entry: entry[0])
    done = tuple(action for _, action in applied)
    if failed:
        raise await _refused(api, *failed[0], done)
    return ApplyResult(plan, done, tuple(skipped))


async def _refused(
    api: JsApi, action: Action, exc: BaseException, applied: tuple[Action, ...]
) -> BaseException:
    """What to raise for ``action``'s failure: the server's refusal as a ``ProvisionError``
    that names what was applied; anything else (a lost connection) as it was."""
    if not isinstance(exc, JetStreamError):
        return exc
    done = ", ".join(f"{a.op} {a.kind} {a.label}" for a in applied if a.op != "unchanged")
    gone = (
        action.op == "recreate"
        and action.kind == "stream"
        and await api.stream_info(action.name) is None
    )
    return ProvisionError(
        f"{action.kind} {action.label}: the server refused to {action.op} it:"
        f" {exc.description} (error {exc.err_code})"
        + (
            "; it was deleted to be made again, so it is missing now (its messages"
            " with it): fix its settings and run `fleetbus provision` again"
            if gone
            else ""
        )
        + (f"; applied: {done}" if done else "")
    )


async def _apply_one(api: JsApi, action: Action) -> None:
    config = dict(action.config)
    if action.kind == "stream":
        if action.op == "create":
            await api.create_stream(config)
        elif action.op in ("update", "migrate"):
            await api.update_stream(config)
        elif action.op == "recreate":
            await api.delete_stream(action.name)
            await api.create_stream(config)
        return
    if action.op == "recreate":
        await api.delete_consumer(action.stream, action.name)
    await api.put_consumer(
        action.stream, config, action="update" if action.op == "update" else "create"
    )

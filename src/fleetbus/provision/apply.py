"""Read the live server, plan against the fleet file, and apply the plan idempotently."""

from __future__ import annotations

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
    "ApplyResult",
    "apply_plan",
    "cluster_size",
    "provision",
    "provision_at",
    "read_live",
    "refusal",
]


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
    if plan.conflicts:
        raise ProvisionError("; ".join(plan.conflicts) + " (nothing was applied)")
    applied: list[Action] = []
    skipped: list[Action] = []
    recreated: set[str] = set()
    # Streams first: consumers need their stream.
    ordered = sorted(plan.actions, key=lambda a: a.kind != "stream")
    for action in ordered:
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
        try:
            await _apply_one(api, action)
        except JetStreamError as exc:
            done = ", ".join(f"{a.op} {a.kind} {a.label}" for a in applied if a.op != "unchanged")
            gone = (
                action.op == "recreate"
                and action.kind == "stream"
                and await api.stream_info(action.name) is None
            )
            raise ProvisionError(
                f"{action.kind} {action.label}: the server refused to {action.op} it:"
                f" {exc.description} (error {exc.err_code})"
                + (
                    "; it was deleted to be made again, so it is missing now (its messages"
                    " with it): fix its settings and run `fleetbus provision` again"
                    if gone
                    else ""
                )
                + (f"; applied before it: {done}" if done else "")
            ) from None
        applied.append(action)
        if on_action is not None:
            on_action(action)
    return ApplyResult(plan, tuple(applied), tuple(skipped))


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

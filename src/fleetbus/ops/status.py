"""The fleet at a glance: streams against their limits, consumers' backlog, dead letters,
replicas — and the alert thresholds of the fleet file checked against them.

``collect`` reads the server; ``evaluate`` is pure: a snapshot and thresholds in, alerts out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fleetbus.deadletters import DeadLetters
from fleetbus.fleet import AlertSpec, FleetSpec
from fleetbus.js._natspy import server_info
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection

__all__ = ["Alert", "ConsumerStatus", "FleetStatus", "StreamStatus", "collect", "evaluate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatus:
    name: str
    messages: int
    bytes: int
    max_msgs: int
    max_bytes: int
    replicas: int
    leader: str = ""
    lagging: tuple[str, ...] = ()
    """Replicas that are not current (name and lag)."""
    missing: bool = False

    @property
    def storage_percent(self) -> float | None:
        """The fuller of messages and bytes against their limits, or None without limits."""
        ratios = []
        if self.max_msgs > 0:
            ratios.append(self.messages / self.max_msgs)
        if self.max_bytes > 0:
            ratios.append(self.bytes / self.max_bytes)
        return round(100 * max(ratios), 1) if ratios else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerStatus:
    stream: str
    name: str
    role: str
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
    """Pull requests waiting: > 0 means some agent of the role is polling right now."""
    last_active: str = ""
    missing: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    code: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetStatus:
    server: str
    version: str
    sync_always: bool = False
    """The fleet file's ``server.sync_always``: fsync every write, or every 2 minutes."""
    streams: tuple[StreamStatus, ...]
    consumers: tuple[ConsumerStatus, ...]
    dead_letters: int
    dead_letters_before: int | None = None
    account_storage: int = 0
    account_storage_max: int = -1
    alerts: tuple[Alert, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for stream, raw in zip(self.streams, data["streams"], strict=True):
            raw["storage_percent"] = stream.storage_percent
        return data


async def collect(
    conn: Connection, spec: FleetSpec, *, dead_letters_before: int | None
) -> FleetStatus:
    """Read the fleet's streams and consumers from the server."""
    api = JsApi(conn)
    nc = conn.nc
    info = server_info(nc)
    streams: list[StreamStatus] = []
    for name in spec.streams:
        si = await api.stream_info(name)
        if si is None:
            streams.append(
                StreamStatus(
                    name=name,
                    messages=0,
                    bytes=0,
                    max_msgs=-1,
                    max_bytes=-1,
                    replicas=0,
                    missing=True,
                )
            )
            continue
        config, state = si["config"], si.get("state", {})
        cluster = si.get("cluster") or {}
        lagging = tuple(
            f"{r.get('name')} (lag {r.get('lag', 0)})"
            for r in cluster.get("replicas") or []
            if not r.get("current", False)
        )
        streams.append(
            StreamStatus(
                name=name,
                messages=int(state.get("messages", 0)),
                bytes=int(state.get("bytes", 0)),
                max_msgs=int(config.get("max_msgs", -1)),
                max_bytes=int(config.get("max_bytes", -1)),
                replicas=int(config.get("num_replicas", 1)),
                leader=str(cluster.get("leader", "")),
                lagging=lagging,
            )
        )
    consumers: list[ConsumerStatus] = []
    for consumer in spec.consumers():
        ci = (
            await api.consumer_info(consumer.stream, consumer.name)
            if _exists(streams, consumer.stream)
            else None
        )
        if ci is None:
            consumers.append(
                ConsumerStatus(
                    stream=consumer.stream,
                    name=consumer.name,
                    role=consumer.role,
                    pending=0,
                    ack_pending=0,
                    redelivered=0,
                    waiting=0,
                    missing=True,
                )
            )
            continue
        consumers.append(
            ConsumerStatus(
                stream=consumer.stream,
                name=consumer.name,
                role=consumer.role,
                pending=int(ci.get("num_pending", 0)),
                ack_pending=int(ci.get("num_ack_pending", 0)),
                redelivered=int(ci.get("num_redelivered", 0)),
                waiting=int(ci.get("num_waiting", 0)),
                last_active=str((ci.get("delivered") or {}).get("last_active", "")),
            )
        )
    dead = 0
    if spec.dead_letter_stream and _exists(streams, spec.dead_letter_stream):
        dead = await DeadLetters(conn, spec).count()
    account = await api.request("INFO")
    limits = account.get("limits", {})
    return FleetStatus(
        server=nc.connected_url.geturl() if nc.connected_url is not None else "",
        version=str(info.get("version", "")),
        sync_always=spec.server.sync_always,
        streams=tuple(streams),
        consumers=tuple(consumers),
        dead_letters=dead,
        dead_letters_before=dead_letters_before,
        account_storage=int(account.get("storage", 0)),
        account_storage_max=int(limits.get("max_storage", -1)),
    )


def evaluate(status: FleetStatus, alerts: AlertSpec) -> tuple[Alert, ...]:
    """Which thresholds of the fleet file the snapshot crosses."""
    out: list[Alert] = []
    for s in status.streams:
        if s.missing:
            out.append(
                Alert(
                    code="stream-missing",
                    subject=s.name,
                    message=f"{s.name} does not exist: run `fleetbus provision`",
                )
            )
            continue
        percent = s.storage_percent
        if percent is not None and percent >= alerts.storage_percent:
            out.append(
                Alert(
                    code="storage",
                    subject=s.name,
                    message=f"{s.name} is at {percent:g}% of its limit"
                    f" (alert at {alerts.storage_percent:g}%)",
                )
            )
        if alerts.replicas_out_of_sync and s.lagging:
            out.append(
                Alert(
                    code="replicas",
                    subject=s.name,
                    message=f"{s.name} replicas not current: {', '.join(s.lagging)}",
                )
            )
    for c in status.consumers:
        if c.missing:
            out.append(
                Alert(
                    code="consumer-missing",
                    subject=c.name,
                    message=f"{c.stream} > {c.name} does not exist: run `fleetbus provision`",
                )
            )
            continue
        if c.pending > alerts.consumer_pending:
            out.append(
                Alert(
                    code="pending",
                    subject=c.name,
                    message=f"{c.name} has {c.pending} messages waiting"
                    f" (alert above {alerts.consumer_pending}): stuck or overwhelmed?",
                )
            )
        if c.ack_pending > alerts.ack_pending:
            out.append(
                Alert(
                    code="ack-pending",
                    subject=c.name,
                    message=f"{c.name} has {c.ack_pending} unacknowledged"
                    f" (alert above {alerts.ack_pending})",
                )
            )
    if (
        alerts.dead_letters_growing
        and status.dead_letters_before is not None
        and status.dead_letters > status.dead_letters_before
    ):
        grew = status.dead_letters - status.dead_letters_before
        out.append(
            Alert(
                code="dead-letters",
                subject="dead letters",
                message=f"{grew} new dead letter(s) since the last check"
                f" ({status.dead_letters} in all): `fleetbus dlq list`",
            )
        )
    if status.account_storage_max > 0:
        percent = 100 * status.account_storage / status.account_storage_max
        if percent >= alerts.storage_percent:
            out.append(
                Alert(
                    code="storage",
                    subject="account",
                    message=f"JetStream file storage at {percent:.1f}% of max_file",
                )
            )
    return tuple(out)


def _exists(streams: list[StreamStatus], name: str) -> bool:
    return any(s.name == name and not s.missing for s in streams)

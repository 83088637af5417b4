"""The fleet at a glance: streams against their limits, consumers' backlog, dead letters,
replicas — and the alert thresholds of the fleet file checked against them.

``collect`` reads the server; ``evaluate`` is pure: a snapshot and thresholds in, alerts out.

What is measured against what:

- each stream against its *own* limits: messages, bytes, and (where a full subject refuses
  senders: discard new per subject) its fullest subject against ``max_msgs_per_subject``;
  its consumers against ``max_consumers``;
- JetStream storage against the account's limit, or the fleet file's ``server.max_file``
  when the account has none (the embedded server's);
- consumers' backlog only where an agent serves the role: a consumer nobody polls and
  nobody is working on is an *idle role* (shown, never an alert: a role whose agent is not
  running is not a fault of the fleet, and its backlog is kept for it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fleetbus.deadletters import DeadLetters
from fleetbus.fleet import AlertSpec, FleetSpec
from fleetbus.js._natspy import server_info
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection
from fleetbus.presence import Presence

_ALIVE = ("running", "draining", "suspect")

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
    max_msgs_per_subject: int = -1
    fullest_subject: str = ""
    fullest_subject_msgs: int = 0
    """The subject holding the most messages, where a full subject refuses senders."""
    consumers: int = 0
    max_consumers: int = -1
    discard: str = "old"
    last_seq: int = 0
    """The sequence of the last message stored: its growth is the stream's message rate
    (``messages`` also shrinks as retention removes what was processed)."""

    @property
    def storage_percent(self) -> float | None:
        """The fuller of messages and bytes against their limits, or None without limits."""
        ratios = []
        if self.max_msgs > 0:
            ratios.append(self.messages / self.max_msgs)
        if self.max_bytes > 0:
            ratios.append(self.bytes / self.max_bytes)
        return round(100 * max(ratios), 1) if ratios else None

    @property
    def subject_percent(self) -> float | None:
        """The fullest subject against ``max_msgs_per_subject`` (where that is watched)."""
        if self.max_msgs_per_subject <= 0 or not self.fullest_subject:
            return None
        return round(100 * self.fullest_subject_msgs / self.max_msgs_per_subject, 1)


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
    serving: bool | None = None
    """Whether a live agent of the role runs, from presence (None: not known)."""

    @property
    def idle(self) -> bool:
        """No agent of the role runs (presence says so; without presence: nobody polls the
        consumer and nothing is in flight)."""
        if self.missing:
            return False
        if self.serving is not None:
            return not self.serving
        return self.waiting == 0 and self.ack_pending == 0


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
    storage_limit_source: str = "account"
    """Where ``account_storage_max`` comes from: the account's limit, or ``server.max_file``."""
    agents: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per role, its agent processes by state (``running``, ``suspect``, ...), from presence;
    empty when the fleet has no presence stream."""
    alerts: tuple[Alert, ...] = field(default_factory=tuple)

    @property
    def serving(self) -> frozenset[str]:
        """The roles with a live agent (running, draining or suspect), from presence."""
        return _serving(self.agents)

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
        per_subject = int(config.get("max_msgs_per_subject", -1) or -1)
        fullest, fullest_msgs = "", 0
        if per_subject > 0 and config.get("discard_new_per_subject"):
            fullest, fullest_msgs = await _fullest_subject(api, name)
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
                max_msgs_per_subject=per_subject,
                fullest_subject=fullest,
                fullest_subject_msgs=fullest_msgs,
                consumers=int(state.get("consumer_count", 0)),
                max_consumers=int(config.get("max_consumers", -1)),
                discard=str(config.get("discard", "old")),
                last_seq=int(state.get("last_seq", 0)),
            )
        )
    # One CONSUMER.LIST page answers for up to 256 consumers: a fleet of a thousand roles
    # is read in a dozen requests instead of three thousand.
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    for s in streams:
        if not s.missing:
            for found in await api.consumers(s.name):
                listed[(s.name, str(found.get("name", "")))] = found
    consumers: list[ConsumerStatus] = []
    for consumer in spec.consumers():
        ci = listed.get((consumer.stream, consumer.name))
        if ci is None and _exists(streams, consumer.stream):
            # not listed: missing, or its leader did not answer the list (a cluster)
            ci = await api.consumer_info(consumer.stream, consumer.name)
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
    agents: dict[str, dict[str, int]] = {}
    presence = Presence(conn, spec)
    if presence.stream and _exists(streams, presence.stream):
        agents = {role: {} for role in spec.roles}
        for agent in await presence.agents():
            counts = agents.setdefault(agent.role, {})
            counts[agent.state] = counts.get(agent.state, 0) + 1
        serving = _serving(agents)
        consumers = [  # a running role's consumer nobody polls is still not an idle role's
            c if not c.role or c.missing else replace(c, serving=c.role in serving)
            for c in consumers
        ]
    dead = 0
    if spec.dead_letter_stream and _exists(streams, spec.dead_letter_stream):
        dead = await DeadLetters(conn, spec).count()
    account = await api.request("INFO")
    limits = account.get("limits", {})
    storage_max, source = int(limits.get("max_storage", -1)), "account"
    if storage_max <= 0:
        storage_max, source = spec.server.max_file, "server.max_file"
    return FleetStatus(
        server=nc.connected_url.geturl() if nc.connected_url is not None else "",
        version=str(info.get("version", "")),
        sync_always=spec.server.sync_always,
        streams=tuple(streams),
        consumers=tuple(consumers),
        dead_letters=dead,
        dead_letters_before=dead_letters_before,
        account_storage=int(account.get("storage", 0)),
        account_storage_max=storage_max,
        storage_limit_source=source,
        agents=agents,
    )


SUBJECTS_SCANNED = 10_000
"""The most subjects one status reads per stream (a page of the server's answer)."""


async def _fullest_subject(api: JsApi, stream: str) -> tuple[str, int]:
    """The stream's subject with the most messages (one page of subjects is enough: on an
    interest stream only unprocessed messages are stored)."""
    info = await api.request(f"STREAM.INFO.{stream}", {"subjects_filter": ">"})
    subjects: dict[str, int] = (info.get("state") or {}).get("subjects") or {}
    if not subjects:
        return "", 0
    subject = max(subjects, key=lambda k: subjects[k])
    return subject, int(subjects[subject])


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
        subject_percent = s.subject_percent
        if subject_percent is not None and subject_percent >= alerts.storage_percent:
            out.append(
                Alert(
                    code="subject-full",
                    subject=s.name,
                    message=f"{s.fullest_subject} holds {s.fullest_subject_msgs} of"
                    f" {s.name}'s {s.max_msgs_per_subject} per subject: at the limit its"
                    " sender is refused until the role catches up",
                )
            )
        if s.max_consumers > 0 and s.consumers >= 0.9 * s.max_consumers:
            out.append(
                Alert(
                    code="consumers",
                    subject=s.name,
                    message=f"{s.name} has {s.consumers} of its {s.max_consumers} consumers:"
                    " at the limit readers (fleetbus task, dlq list, a dashboard) are refused",
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
        if c.idle:
            continue  # an idle role: shown by the report, its backlog kept for it
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
            limit = (
                "the account limit"
                if status.storage_limit_source == "account"
                else "the fleet file's server.max_file"
            )
            out.append(
                Alert(
                    code="storage",
                    subject="account",
                    message=f"JetStream storage at {percent:.1f}% of {limit}",
                )
            )
    return tuple(out)


def _serving(agents: dict[str, dict[str, int]]) -> frozenset[str]:
    return frozenset(r for r, counts in agents.items() if any(counts.get(k) for k in _ALIVE))


def _exists(streams: list[StreamStatus], name: str) -> bool:
    return any(s.name == name and not s.missing for s in streams)

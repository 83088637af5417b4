"""What an agent knows of its role's cancel requests from its live subscription.

A cancel request (``P.tasks.{id}.cancel.{A}.{R}``) is stored in TASKS and published to
every agent of the role at once. An agent subscribes to them before it fetches any task, so
a request published while a handler runs cancels it live; one that names a task the agent
is not running (yet) is kept here, and the task is cancelled when it is fetched.

Reading the stream for a stored request costs a round trip per task. It is needed only when
a request may have been published while this agent was not listening: for a task the stream
stored before the subscription was in place, or before the connection last dropped. Every
other first attempt is answered from here (``LiveCancels.complete_for``).

"Stored after the subscription was in place" compares the task's stored time with the time
in a reply the server sent after the subscription. In a cluster those are two servers'
clocks, and the subscription reaches the other servers a moment later, so a margin is added
(``MARGIN``). A server on its own has one clock and its subscriptions are in place once read:
no margin (``clocks_margin``), so an agent that has just started skips the read too.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetbus.js._natspy import server_info
from fleetbus.js.connection import Connection
from fleetbus.wire.clock import parse_iso

__all__ = ["MARGIN", "LiveCancels", "clocks_margin"]

MARGIN = timedelta(seconds=1)
"""Added to the live-since time before stored times are compared with it: the clocks of a
cluster's servers (and this process's, for a forgotten request) may differ by this much, and
a new subscription takes less than this to reach the cluster's other servers."""


def clocks_margin(consumer_info: dict[str, Any], server_info: dict[str, Any]) -> timedelta:
    """The margin for a consumer whose info is ``consumer_info``, read over a connection to
    the server that sent ``server_info`` (its INFO). Zero when that server runs JetStream
    itself and neither it nor the consumer is in a cluster: the consumer's stream, its clock
    and the subscription are then all that one server's."""
    alone = (
        server_info.get("jetstream") is True
        and not server_info.get("cluster")
        and not consumer_info.get("cluster")
    )
    return timedelta(0) if alone else MARGIN


class LiveCancels:
    """Cancel requests that arrived live for tasks not running here, at most ``keep`` of
    them; and since when the subscription has been in place without a break."""

    def __init__(self, keep: int = 1024) -> None:
        self.keep = keep
        self._waiting: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._conn: Connection | None = None
        self._since: datetime | None = None
        self._breaks = 0

    def listening(self, conn: Connection, consumer_info: dict[str, Any] | None) -> None:
        """The subscription is in place on ``conn`` as of the time in ``consumer_info``: the
        tasks consumer's info, asked for over ``conn`` after the subscription (None: not
        known, every first attempt reads the stream)."""
        server_time = consumer_info.get("ts") if consumer_info else None
        if consumer_info is None or server_time is None or not conn.tracks_breaks:
            self._conn = self._since = None
            return
        self._conn, self._breaks = conn, conn.breaks
        margin = clocks_margin(consumer_info, server_info(conn.nc))
        self._since = parse_iso(server_time) + margin

    def arrived(self, task_id: str, assigner: str, reason: str) -> None:
        """A request for a task no handler here runs: kept for when it is fetched. Past
        ``keep``, the oldest is forgotten and tasks stored before now are read from the
        stream again (a forgotten request can only name one of those)."""
        key = (task_id, assigner)
        self._waiting[key] = reason
        self._waiting.move_to_end(key)
        while len(self._waiting) > self.keep:
            self._waiting.popitem(last=False)
            if self._since is not None:
                self._since = max(self._since, datetime.now(UTC) + MARGIN)  # our clock

    def take(self, task_id: str, assigner: str) -> str | None:
        """The reason of a request that arrived live for this task (forgotten once taken)."""
        return self._waiting.pop((task_id, assigner), None)

    def complete_for(self, stored: datetime) -> bool:
        """Whether every request for a task the stream stored at ``stored`` reached this
        agent live (so none waits in the stream unseen)."""
        conn, since = self._conn, self._since
        if conn is None or since is None or conn.breaks != self._breaks:
            return False
        return stored > since

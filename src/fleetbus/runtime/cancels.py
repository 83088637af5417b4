"""What an agent knows of its role's cancel requests from its live subscription.

A cancel request (``P.tasks.{id}.cancel.{A}.{R}``) is stored in TASKS and published to
every agent of the role at once. An agent subscribes to them before it fetches any task, so
a request published while a handler runs cancels it live; one that names a task the agent
is not running (yet) is kept here, and the task is cancelled when it is fetched.

Reading the stream for a stored request costs a round trip per task. It is needed only when
a request may have been published while this agent was not listening: for a task the stream
stored before the subscription was in place, or before the connection last dropped. Every
other first attempt is answered from here (``LiveCancels.answers``).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from fleetbus.js.connection import Connection
from fleetbus.wire.clock import parse_iso

__all__ = ["LiveCancels"]

MARGIN = timedelta(seconds=1)
"""Added to the live-since time before stored times are compared with it: the clocks of a
cluster's servers (and this process's, for a forgotten request) may differ by this much."""


class LiveCancels:
    """Cancel requests that arrived live for tasks not running here, at most ``keep`` of
    them; and since when the subscription has been in place without a break."""

    def __init__(self, keep: int = 1024) -> None:
        self.keep = keep
        self._waiting: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._conn: Connection | None = None
        self._since: datetime | None = None
        self._breaks = 0

    def listening(self, conn: Connection, server_time: str | None) -> None:
        """The subscription is in place on ``conn`` as of ``server_time`` (the server's clock
        in a reply to a request sent after the subscription). None: not known."""
        if server_time is None or not conn.tracks_breaks:
            self._conn = self._since = None
            return
        self._conn, self._since, self._breaks = conn, parse_iso(server_time), conn.breaks

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
                self._since = max(self._since, datetime.now(UTC))

    def take(self, task_id: str, assigner: str) -> str | None:
        """The reason of a request that arrived live for this task (forgotten once taken)."""
        return self._waiting.pop((task_id, assigner), None)

    def complete_for(self, stored: datetime) -> bool:
        """Whether every request for a task the stream stored at ``stored`` reached this
        agent live (so none waits in the stream unseen)."""
        conn, since = self._conn, self._since
        if conn is None or since is None or conn.breaks != self._breaks:
            return False
        return stored > since + MARGIN

"""A real JetStream cluster on loopback: N nats-server processes with routes to each other.

The seed runs three nodes (``cluster { name: agent-cluster, routes: [...] }``). Locally each
node gets its own data dir (``n1/``, ``n2/``, ...) and consecutive ports (client 4222, 4223,
...; routes 6222, ...; monitoring, when the fleet file turns it on, 8222, ...). Every node
lists every other one (a full mesh of explicit routes), and with ``route_auth`` the route
ports take only those credentials: no local process can join the cluster uninvited.
``start()`` returns once every node is ready and has seen a JetStream meta leader elected
(both read from the nodes' logs), so streams can be created at replicas N.

Planned restarts are graceful: ``stop_node`` sends SIGTERM, on which nats-server hands its
stream and meta leaderships over before exiting (measured: 62 ms of publish outage), while
``kill_node`` (SIGKILL) is the crash case (a new leader after the raft election timeout).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote as quote_url

from fleetbus.errors import ServerError
from fleetbus.server.config import hostport
from fleetbus.server.logs import meta_leader
from fleetbus.server.process import NatsServer

if TYPE_CHECKING:
    from fleetbus.fleet.model import ServerSpec

__all__ = ["LocalCluster", "NodePorts", "free_port"]


@dataclass(frozen=True, slots=True)
class NodePorts:
    client: int
    monitor: int | None
    cluster: int


class LocalCluster:
    """``size`` nats-server nodes on loopback, routed to each other."""

    def __init__(
        self,
        spec: ServerSpec,
        data_dir: str | Path,
        size: int = 3,
        *,
        ports: Sequence[NodePorts] | None = None,
        extra_config: str = "",
        start_new_session: bool = False,
        route_auth: tuple[str, str] | None = None,
        route_tls: str = "",
    ) -> None:
        """``route_auth``: (user, password) every route presents and every route port asks
        for; ``route_tls``: a ``tls { ... }`` block for the routes."""
        if size < 1:
            raise ServerError("a cluster needs at least one node")
        self.spec = spec
        self.data_dir = Path(data_dir).absolute()
        self.size = size
        self._picked = ports is None and 0 in (spec.port, spec.monitor_port, spec.cluster.port)
        if self._picked:
            # Routes name each other's ports up front: pick free ones now.
            ports = self._free_ports()
        self.ports = (
            list(ports)
            if ports is not None
            else [
                NodePorts(
                    spec.port + i,
                    spec.monitor_port + i if spec.monitor_port is not None else None,
                    spec.cluster.port + i,
                )
                for i in range(size)
            ]
        )
        if len(self.ports) != size:
            raise ServerError(f"{size} nodes need {size} sets of ports, got {len(self.ports)}")
        self._extra = extra_config
        self._new_session = start_new_session
        self._route_auth = route_auth
        self._route_tls = route_tls
        self.nodes = [self._node(i) for i in range(size)]

    def _free_ports(self) -> list[NodePorts]:
        monitored = self.spec.monitor_port is not None
        return [
            NodePorts(free_port(), free_port() if monitored else None, free_port())
            for _ in range(self.size)
        ]

    def _node(self, index: int) -> NatsServer:
        login = ""
        if self._route_auth is not None:
            user, password = self._route_auth
            login = f"{quote_url(user)}:{quote_url(password)}@"
        routes = [
            f"nats-route://{login}{hostport(self.spec.host, p.cluster)}"
            for i, p in enumerate(self.ports)
            if i != index
        ]
        p = self.ports[index]
        return NatsServer(
            self.spec,
            self.data_dir / f"n{index + 1}",
            port=p.client,
            monitor_port=p.monitor,
            server_name=f"{self.spec.cluster.name}-{index + 1}",
            cluster_name=self.spec.cluster.name,
            cluster_port=p.cluster,
            routes=routes,
            route_auth=self._route_auth,
            route_tls=self._route_tls,
            extra_config=self._extra,
            start_new_session=self._new_session,
        )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """All client URLs, comma-separated: clients reconnect to any of them."""
        return ",".join(self.urls)

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Start every node, then wait until all are healthy and a meta leader exists.

        Ports this cluster picked itself were free when picked, not when a node binds them:
        another process may take one in between. Then the cluster starts over on fresh
        ports (twice at most); ports the caller chose are never changed."""
        for attempt in range(3):
            try:
                for node in self.nodes:
                    node.start(timeout)
                self.wait_healthy(timeout)
            except ServerError as exc:
                self.stop(grace=2.0)
                if not (self._picked and "already in use" in str(exc)) or attempt == 2:
                    raise
                self.ports = self._free_ports()
                self.nodes = [self._node(i) for i in range(self.size)]
                continue
            except BaseException:
                self.stop(grace=2.0)
                raise
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_healthy(self, timeout: float = 30.0, *, nodes: Sequence[int] | None = None) -> None:
        """Until every (running) node has logged, since it started, that it sees a JetStream
        meta leader: streams at replicas N can be created then."""
        deadline = time.monotonic() + timeout
        indexes = list(nodes) if nodes is not None else list(range(self.size))
        while True:
            waiting = [
                self.nodes[i].server_name
                for i in indexes
                if self.nodes[i].running and meta_leader(self.nodes[i].log_since_start()) is None
            ]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"the cluster was not ready within {timeout:g}s: {', '.join(waiting)}"
                    " saw no JetStream meta leader elected (are the routes right?)"
                )
            time.sleep(0.1)

    def node_named(self, name: str) -> int:
        for i in range(self.size):
            if f"{self.spec.cluster.name}-{i + 1}" == name:
                return i
        raise ServerError(f"no node named {name!r} in this cluster")

    def stop_node(self, index: int, grace: float = 10.0) -> None:
        """Graceful stop (SIGTERM): the node hands over its leaderships first."""
        self.nodes[index].stop(grace)

    def kill_node(self, index: int) -> None:
        """A crash (SIGKILL): no handover; the others elect new leaders."""
        node = self.nodes[index]
        if node.pid is not None and node.running:
            os.kill(node.pid, signal.SIGKILL)
        node.stop(grace=1.0)

    def restart_node(self, index: int, timeout: float = 30.0) -> None:
        """Start a stopped node again on the same ports and data (it catches up)."""
        self.nodes[index] = self._node(index)
        self.nodes[index].start(timeout)

    def stop(self, grace: float = 10.0) -> None:
        for node in self.nodes:
            node.stop(grace)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port

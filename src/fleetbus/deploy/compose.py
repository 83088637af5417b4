"""Render a fleet to a docker compose project: the production shape on one machine. Pure: no
I/O, no clock, no randomness (passwords come in, as for Kubernetes).

:func:`render_compose` returns the files of a project directory::

    compose.yaml              the services below
    nats/nats-1.conf ...      one nats-server config per node: JetStream in /data, routes to
                              the other nodes (user ``route`` and its password: private),
                              and ``include "auth.conf"``
    nats/auth.conf            the authorization block `fleetbus up` runs (per-role least
                              privilege, bcrypt hashes): the renderer `deploy k8s` uses
    fleet.yaml                the fleet file, every setting spelled out
    credentials/admin.env     FLEETBUS_USER / FLEETBUS_PASSWORD of the admin (provisioning)
    credentials/<role>.env    the same for each role: each agent service reads its own only
    README.md                 the steps

Services: ``nats-1`` .. ``nats-N`` (a JetStream cluster; healthy once ``/healthz`` says the
node is up with JetStream), ``provision`` (one shot: ``fleetbus provision`` as the admin, once
every node is healthy) and ``agent-<role>`` per role (``fleetbus run`` as that role, started
after provisioning succeeded). The routes live on a network of their own, which no fleetbus
container joins, and ask for the route password: a node also listens on the ``fleet``
network (it binds every interface), where an agent could otherwise route a server of its own
into the cluster and read everything through it. Client ports are published on the host's
loopback only (4222, 4223, ...), for the fleetbus CLI on the host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as quote_url

import yaml

from fleetbus.deploy.images import FLEETBUS_IMAGE, NATS_IMAGE
from fleetbus.deploy.k8s_values import (
    ADMIN,
    AGENT_GRACE_SECONDS,
    PLACEHOLDER_MARK,
    AuthorizationRenderer,
    PasswordSource,
    fleet_yaml,
    per_role_authorization,
    placeholder_credentials,
)
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.security import Credential
from fleetbus.security.credentials import ROUTE
from fleetbus.server.config import render_config

__all__ = [
    "ComposeOptions",
    "ProjectFile",
    "compose_services",
    "project_name",
    "render_compose",
    "server_urls",
]

CLIENT_PORT = 4222
MONITOR_PORT = 8222
ROUTE_PORT = 6222
NATS_CONFIG_DIR = "/etc/nats"
FLEET_FILE = "/etc/fleetbus/fleet.yaml"
DATA_DIR = "/data"


@dataclass(frozen=True, kw_only=True, slots=True)
class ComposeOptions:
    """How the fleet runs under docker compose."""

    nats_image: str = NATS_IMAGE
    fleetbus_image: str = FLEETBUS_IMAGE
    """An image with fleetbus (the repository's Dockerfile) and, for agents, their code."""
    replicas: int = 3
    """NATS nodes; at least the largest stream ``replicas``."""
    agent_module: str = "your_agents.{role}:agent"
    """``fleetbus run`` target of each role's service; ``{role}`` is replaced."""
    host_port: int = CLIENT_PORT
    """The first node's client port on the host's loopback; the others count up from it."""
    password_source: PasswordSource = "placeholder"
    route_password: str = f"{PLACEHOLDER_MARK}-route-password"
    """What the nodes present to each other on their route ports (user ``route``)."""


@dataclass(frozen=True, slots=True)
class ProjectFile:
    """One file of the project directory; ``private`` ones hold passwords (write them 0600)."""

    name: str
    text: str
    private: bool = False


def _node(index: int) -> str:
    return f"nats-{index}"


def server_urls(options: ComposeOptions) -> str:
    """The cluster's client URLs as the containers reach them, comma-separated."""
    nodes = range(1, options.replicas + 1)
    return ",".join(f"nats://{_node(i)}:{CLIENT_PORT}" for i in nodes)


def _node_config(spec: FleetSpec, index: int, options: ComposeOptions) -> str:
    login = f"{quote_url(ROUTE)}:{quote_url(options.route_password, safe='')}@"
    routes = [
        f"nats-route://{login}{_node(i)}:{ROUTE_PORT}"
        for i in range(1, options.replicas + 1)
        if i != index
    ]
    return render_config(
        spec.server,
        store_dir=DATA_DIR,
        host="0.0.0.0",
        port=CLIENT_PORT,
        monitor_port=MONITOR_PORT,
        # for the container's own health check only: no other container (an agent with a
        # role's credentials, say) can list the connections and subscriptions
        monitor_host="127.0.0.1",
        server_name=f"{spec.server.cluster.name}-{index}",
        cluster_name=spec.server.cluster.name,
        cluster_port=ROUTE_PORT,
        routes=routes,
        route_auth=(ROUTE, options.route_password),
        # Resolved against this file's directory, where auth.conf is mounted beside it.
        extra='include "auth.conf"',
    )


def _env_file(cred: Credential) -> str:
    # Single quotes: compose takes the value literally (no $-interpolation, no escapes).
    for value in (cred.user, cred.password):
        if "'" in value or "\n" in value:
            raise FleetbusError(
                f"the credentials of {cred.user!r} hold a quote or a newline, which an env"
                " file cannot carry: choose another password"
            )
    return f"FLEETBUS_USER='{cred.user}'\nFLEETBUS_PASSWORD='{cred.password}'\n"


def project_name(spec: FleetSpec) -> str:
    """The compose project name: the prefix, in the characters compose allows."""
    name = re.sub(r"[^a-z0-9_-]+", "-", spec.prefix.lower()).strip("-_")
    return name if name and name[0].isalnum() else f"fleet-{name}".rstrip("-")


def _fleetbus(*verb: str, options: ComposeOptions) -> list[str]:
    """A fleetbus command line: the global options, then ``verb`` (the image's entrypoint
    is ``fleetbus``)."""
    return ["--server", server_urls(options), "--fleet", FLEET_FILE, *verb]


def compose_services(spec: FleetSpec, options: ComposeOptions) -> dict[str, Any]:
    """The compose file as a dict (the Compose Specification's keys)."""
    fleet_mount = f"./fleet.yaml:{FLEET_FILE}:ro"
    nodes = [_node(i) for i in range(1, options.replicas + 1)]
    services: dict[str, Any] = {}
    for i, name in enumerate(nodes, start=1):
        services[name] = {
            "image": options.nats_image,
            "command": ["--config", f"{NATS_CONFIG_DIR}/{name}.conf"],
            "volumes": [
                f"./nats/{name}.conf:{NATS_CONFIG_DIR}/{name}.conf:ro",
                f"./nats/auth.conf:{NATS_CONFIG_DIR}/auth.conf:ro",
                f"{name}-data:{DATA_DIR}",
            ],
            "networks": ["fleet", "routes"],
            "ports": [f"127.0.0.1:{options.host_port + i - 1}:{CLIENT_PORT}"],
            "healthcheck": {
                # JetStream on, before the meta group forms (that needs the other nodes).
                "test": [
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    f"http://127.0.0.1:{MONITOR_PORT}/healthz?js-server-only=true",
                ],
                "interval": "5s",
                "timeout": "3s",
                "retries": 12,
                "start_period": "5s",
            },
            # nats-server hands its leaderships over on SIGTERM (lame duck), then exits.
            "stop_grace_period": "30s",
            "restart": "unless-stopped",
        }
    services["provision"] = {
        "image": options.fleetbus_image,
        "command": _fleetbus("provision", options=options),
        "env_file": ["credentials/admin.env"],
        "volumes": [fleet_mount],
        "networks": ["fleet"],
        "depends_on": {n: {"condition": "service_healthy"} for n in nodes},
        # The meta group may still be electing its leader: provisioning is idempotent.
        "restart": "on-failure",
    }
    for role in spec.roles:
        services[f"agent-{role}"] = {
            "image": options.fleetbus_image,
            "command": _fleetbus(
                "run",
                "--grace",
                str(AGENT_GRACE_SECONDS),
                options.agent_module.format(role=role),
                options=options,
            ),
            "env_file": [f"credentials/{role}.env"],
            "volumes": [fleet_mount],
            "networks": ["fleet"],
            "depends_on": {"provision": {"condition": "service_completed_successfully"}},
            "stop_grace_period": f"{2 * AGENT_GRACE_SECONDS}s",
            "restart": "unless-stopped",
        }
    return {
        "name": project_name(spec),
        "services": services,
        "networks": {"fleet": {}, "routes": {"internal": True}},
        "volumes": {f"{n}-data": {} for n in nodes},
    }


def render_compose(
    spec: FleetSpec,
    options: ComposeOptions | None = None,
    *,
    credentials: Mapping[str, Credential] | None = None,
    authorization: AuthorizationRenderer | None = None,
) -> list[ProjectFile]:
    """Every file of the compose project directory (the README last)."""
    options = options or ComposeOptions()
    authorization = authorization or per_role_authorization
    widest = max(s.replicas for s in spec.streams.values())
    if options.replicas < widest:
        raise FleetbusError(
            f"{options.replicas} NATS nodes cannot hold a stream with {widest} replicas:"
            f" use at least {widest} nodes, or lower the streams' replicas"
        )
    creds = dict(credentials) if credentials is not None else placeholder_credentials(spec)
    missing = [key for key in (ADMIN, *spec.roles) if key not in creds]
    if missing:
        raise FleetbusError(f"no credentials for {', '.join(missing)}")
    compose = compose_services(spec, options)
    files = [
        ProjectFile(
            "compose.yaml",
            "# Written by `fleetbus deploy compose`; see README.md.\n"
            + yaml.safe_dump(compose, sort_keys=False, width=100),
        ),
        *(
            ProjectFile(f"nats/{_node(i)}.conf", _node_config(spec, i, options), private=True)
            for i in range(1, options.replicas + 1)
        ),
        ProjectFile("nats/auth.conf", authorization(spec, creds)),
        ProjectFile("fleet.yaml", fleet_yaml(spec)),
        ProjectFile("credentials/admin.env", _env_file(creds[ADMIN]), private=True),
        *(
            ProjectFile(f"credentials/{role}.env", _env_file(creds[role]), private=True)
            for role in spec.roles
        ),
    ]
    files.append(ProjectFile("README.md", _readme(spec, options)))
    return files


def _readme(spec: FleetSpec, options: ComposeOptions) -> str:
    urls = ",".join(f"nats://127.0.0.1:{options.host_port + i}" for i in range(options.replicas))
    placeholder = options.password_source == "placeholder"
    secrets_note = (
        "The passwords in `credentials/*.env` (and their hashes in `nats/auth.conf`) are\n"
        "placeholders (`REPLACE-ME-...`): render again with `--generate-passwords` before\n"
        "anything but a try-out.\n"
        if placeholder
        else "`credentials/*.env` hold real passwords: keep them out of git.\n"
    )
    return f"""\
# fleetbus with docker compose: fleet `{spec.prefix}`

Written by `fleetbus deploy compose`: a {options.replicas}-node NATS JetStream cluster
({options.nats_image}), a one-shot `provision` service, and one `fleetbus run` service per role
({", ".join(spec.roles)}), each logged in as its own role (`credentials/<role>.env`).

{secrets_note}
## Run

Build the fleetbus image from the fleetbus source tree (its `Dockerfile`), then an image of
your agents `FROM` it, and set that image and each role's `MODULE:AGENT` (`--fleetbus-image`,
`--agent-module`):

```sh
docker build -t {FLEETBUS_IMAGE} /path/to/fleetbus
docker compose up -d
docker compose logs provision
```

## Check

From the host, as the admin (its password is in `credentials/admin.env`):

```sh
fleetbus --server {urls} --fleet fleet.yaml \\
  --user admin --password "$ADMIN_PASSWORD" status
```

After changing the fleet file: render again, then `docker compose up -d` (the `provision`
service runs again and applies the difference).
"""

"""The inputs and the NATS side of ``fleetbus deploy k8s``: options, names, credentials, the
``authorization`` block, the fleet file and the NATS Helm chart's values. Pure."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from fleetbus.deploy.images import FLEETBUS_IMAGE, NATS_IMAGE
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.natsconf import quote
from fleetbus.security import ADMIN, Credential, inbox_prefix, render_authorization
from fleetbus.security.credentials import ROUTE

__all__ = [
    "ADMIN",
    "AUTH_INCLUDE",
    "AuthorizationRenderer",
    "K8sOptions",
    "PasswordSource",
    "RenderedFile",
    "basic_authorization",
    "credentials_from_mapping",
    "fleet_yaml",
    "helm_values",
    "k8s_name",
    "make_credential",
    "per_role_authorization",
    "placeholder_credentials",
]

PLACEHOLDER_MARK = "REPLACE-ME"
FLEET_MOUNT = "/etc/fleetbus"
FLEET_KEY = "fleet.yaml"
AUTH_SECRET_KEY = "auth.conf"
AUTH_MOUNT = "/etc/nats-auth"
AUTH_INCLUDE = "../nats-auth/auth.conf"
"""The include path in nats.conf. The chart writes nats.conf into ``/etc/nats-config``;
nats-server resolves an include against the including file's directory, and the chart's config
reloader watches the same path (``/etc/nats-config/../nats-auth/auth.conf``). The Secret is
mounted beside, not inside, the chart's read-only ConfigMap volume."""
AGENT_GRACE_SECONDS = 30
"""What ``fleetbus run --grace`` gives running handlers on SIGTERM."""
_GIB = 1024**3
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

PasswordSource = Literal["placeholder", "generated", "data-dir"]


AuthorizationRenderer = Callable[[FleetSpec, Mapping[str, Credential]], str]
"""Renders the text of a nats-server ``authorization { ... }`` block from the fleet and the
credentials (keyed by :data:`ADMIN` and by role)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class K8sOptions:
    """Where and how the fleet runs on Kubernetes."""

    namespace: str = "genbrain"
    nats_image: str = NATS_IMAGE
    fleetbus_image: str = FLEETBUS_IMAGE
    """An image with fleetbus installed (and, for agents, the agents' code)."""
    release: str = "nats"
    """The Helm release name of the NATS chart: its client Service is called this."""
    replicas: int = 3
    """NATS servers in the cluster; at least the largest stream ``replicas``."""
    agent_module: str = "your_agents.{role}:agent"
    """``fleetbus run`` target for each role's Deployment; ``{role}`` is replaced."""
    password_source: PasswordSource = "placeholder"
    route_password: str = f"{PLACEHOLDER_MARK}-route-password"
    """What the NATS servers present to each other on their route ports (user ``route``):
    without it any pod that reaches port 6222 could route a server of its own into the
    cluster and read everything through it."""

    @property
    def server_url(self) -> str:
        return f"nats://{self.release}.{self.namespace}.svc:4222"


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """One file of the output directory."""

    name: str
    text: str
    manifests: tuple[dict[str, Any], ...] = ()
    """The Kubernetes objects in the file (empty for Helm values and the README)."""
    private: bool = False
    """It holds passwords (or their placeholders): written readable by its owner only."""


def k8s_name(role: str) -> str:
    """A role name as a Kubernetes object name part (DNS-1123 label: ``_`` becomes ``-``)."""
    name = role.replace("_", "-").strip("-")
    if not name:
        raise FleetbusError(f"role {role!r} has no letters or digits to name Kubernetes objects")
    return name


def _names(spec: FleetSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    for role in spec.roles:
        name = k8s_name(role)
        clash = next((r for r, n in out.items() if n == name), None)
        if clash is not None:
            raise FleetbusError(
                f"roles {clash!r} and {role!r} would share Kubernetes names ({name}): rename one"
            )
        out[role] = name
    return out


def make_credential(key: str, user: str, password: str) -> Credential:
    """The credential of identity ``key`` (``admin`` or a role) with this user and password."""
    return Credential(
        user=user,
        password=password,
        inbox_prefix=inbox_prefix(key),
        role=None if key == ADMIN else key,
    )


def placeholder_credentials(spec: FleetSpec) -> dict[str, Credential]:
    """Users for the admin and every role, with passwords marked to be replaced."""
    # The user names `fleetbus up` gives them: a role's user is the role (its inbox prefix
    # and permissions follow from that name).
    out = {ADMIN: make_credential(ADMIN, ADMIN, f"{PLACEHOLDER_MARK}-admin-password")}
    for role in spec.roles:
        out[role] = make_credential(role, role, f"{PLACEHOLDER_MARK}-{role}-password")
    return out


def credentials_from_mapping(spec: FleetSpec, data: Mapping[str, Any]) -> dict[str, Credential]:
    """Credential from ``{"admin": {"user": ..., "password": ...}, "<role>": {...}}``.

    Every identity the fleet needs must be there; a missing one is an error naming it.
    """
    out: dict[str, Credential] = {}
    missing: list[str] = []
    for key in (ADMIN, *spec.roles):
        entry = data.get(key)
        if (
            not isinstance(entry, Mapping)
            or not isinstance(entry.get("user"), str)
            or not isinstance(entry.get("password"), str)
            or not entry["user"]
            or not entry["password"]
        ):
            missing.append(key)
            continue
        out[key] = make_credential(key, entry["user"], entry["password"])
    if missing:
        raise FleetbusError(
            f"no user and password for {', '.join(missing)}"
            ' (each needs {"user": ..., "password": ...})'
        )
    return out


def basic_authorization(spec: FleetSpec, credentials: Mapping[str, Credential]) -> str:
    """An ``authorization`` block with the fleet's users and **no per-role permissions**.

    Every user may publish and subscribe anywhere, as on a fleetbus server without
    authorization; pass a renderer with per-role permissions to :func:`render_k8s` to restrict
    them.
    """
    lines = [
        f"# NATS users of fleet {spec.prefix!r}, written by `fleetbus deploy k8s`.",
        "# No per-role permissions: every user below may publish and subscribe to everything.",
        "authorization {",
        "  users: [",
    ]
    for key in (ADMIN, *spec.roles):
        cred = credentials[key]
        lines.append(f"    {{user: {quote(cred.user)}, password: {quote(cred.password)}}}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def fleet_yaml(spec: FleetSpec) -> str:
    """The fleet file as YAML, every setting spelled out (it loads back to the same spec)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _gib(size: int, headroom: float = 0.0) -> str:
    return f"{max(1, math.ceil(size * (1 + headroom) / _GIB))}Gi"


def _image(image: str) -> dict[str, str]:
    """``registry/repo:tag`` → the chart's ``repository`` and ``tag`` (a port is not a tag)."""
    repo, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return {"repository": image, "tag": "latest"}
    return {"repository": repo, "tag": tag}


def helm_values(spec: FleetSpec, options: K8sOptions) -> dict[str, Any]:
    """Values for the NATS Helm chart (``nats-io/k8s``, chart ``nats`` 1.x)."""
    server = spec.server
    jetstream: dict[str, Any] = {
        "enabled": True,
        "fileStore": {
            "enabled": True,
            "dir": "/data",
            # The server's limit is the fleet file's; the volume has room for JetStream's
            # own metadata beside it (the chart's default would make them equal).
            "pvc": {"enabled": True, "size": _gib(server.max_file, headroom=0.1)},
            # A string: Helm reads a bare number as a float and would print 5e+10.
            "maxSize": str(server.max_file),
        },
        "memoryStore": {"enabled": True, "maxSize": str(server.max_memory)},
    }
    if server.sync_always:
        jetstream["merge"] = {"sync_interval": "always"}
    memory = _gib(server.max_memory + _GIB)
    return {
        "config": {
            "cluster": {
                "enabled": True,
                "replicas": options.replicas,
                "merge": {"name": server.cluster.name},
                # The chart puts these in every route URL and in the cluster's authorization.
                "routeURLs": {"user": ROUTE, "password": options.route_password},
            },
            "jetstream": jetstream,
            "merge": {
                "max_payload": server.max_payload,
                "$include": AUTH_INCLUDE,
            },
        },
        "container": {
            "image": _image(options.nats_image),
            "merge": {
                "resources": {
                    "requests": {"cpu": "500m", "memory": memory},
                    "limits": {"memory": memory},
                }
            },
            "patch": [
                {
                    "op": "add",
                    "path": "/volumeMounts/-",
                    "value": {"name": "auth", "mountPath": AUTH_MOUNT, "readOnly": True},
                }
            ],
        },
        "podTemplate": {
            "patch": [
                {
                    "op": "add",
                    "path": "/spec/volumes/-",
                    "value": {"name": "auth", "secret": {"secretName": "nats-auth"}},
                }
            ],
            "topologySpreadConstraints": {
                "kubernetes.io/hostname": {"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}
            },
        },
        "natsBox": {"enabled": True},
    }


def per_role_authorization(spec: FleetSpec, credentials: Mapping[str, Credential]) -> str:
    """The same ``authorization`` block `fleetbus up` runs: per-role least privilege."""
    return render_authorization(spec, credentials)


AUTHORIZATION: AuthorizationRenderer = per_role_authorization
"""The renderer of the ``authorization`` block: each role's least-privilege permissions."""

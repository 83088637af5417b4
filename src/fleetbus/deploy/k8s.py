"""Render a fleet to what a team applies on Kubernetes. Pure: no I/O, no clock, no randomness.

From a ``FleetSpec`` and a few options, :func:`render_k8s` returns the files of a deployment
directory, each with its text and (for Kubernetes objects) the manifests as dicts:

- ``nats-values.yaml``: values for the official NATS Helm chart (``nats-io/k8s``, chart
  ``nats`` 1.x): a JetStream cluster with one PVC per server, the fleet file's limits, and the
  ``authorization`` block included from a Secret;
- ``nats-auth-secret.yaml``: that Secret (``auth.conf``);
- ``fleetbus-credentials.yaml``: one Secret for the admin identity (provisioning) and one per
  role, each with ``FLEETBUS_USER`` and ``FLEETBUS_PASSWORD``;
- ``fleet-configmap.yaml``: the fleet file;
- ``provision-job.yaml``: a Job running ``fleetbus provision`` as the admin;
- ``agent-<role>-deployment.yaml``: a Deployment per role running ``fleetbus run``;
- ``README.md``: the apply steps.

The passwords come in as :class:`Credentials`: :func:`placeholder_credentials` (the default,
marked ``REPLACE-ME``), or real ones the caller read or generated. The ``authorization`` block is
rendered by an :data:`AuthorizationRenderer`: by default :func:`per_role_authorization`, the
same least-privilege block `fleetbus up` runs; :func:`basic_authorization` (users only) remains
for clusters whose permissions are managed elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from fleetbus.deploy.images import FLEETBUS_IMAGE, NATS_IMAGE
from fleetbus.errors import FleetbusError
from fleetbus.fleet.model import FleetSpec
from fleetbus.server.config import quote

__all__ = [
    "ADMIN",
    "AUTH_INCLUDE",
    "AuthorizationRenderer",
    "Credentials",
    "K8sOptions",
    "PasswordSource",
    "RenderedFile",
    "basic_authorization",
    "credentials_from_mapping",
    "fleet_yaml",
    "helm_values",
    "k8s_name",
    "per_role_authorization",
    "placeholder_credentials",
    "render_k8s",
]

ADMIN = "admin"
"""The key of the admin identity (the one that provisions) in a credentials mapping."""
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


@dataclass(frozen=True, slots=True)
class Credentials:
    """One NATS user: its name and password."""

    user: str
    password: str = field(repr=False)


AuthorizationRenderer = Callable[[FleetSpec, Mapping[str, Credentials]], str]
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


def placeholder_credentials(spec: FleetSpec) -> dict[str, Credentials]:
    """Users for the admin and every role, with passwords marked to be replaced."""
    # The user names `fleetbus up` gives them: a role's user is the role (its inbox prefix
    # and permissions follow from that name).
    out = {ADMIN: Credentials(ADMIN, f"{PLACEHOLDER_MARK}-admin-password")}
    for role in spec.roles:
        out[role] = Credentials(role, f"{PLACEHOLDER_MARK}-{role}-password")
    return out


def credentials_from_mapping(spec: FleetSpec, data: Mapping[str, Any]) -> dict[str, Credentials]:
    """Credentials from ``{"admin": {"user": ..., "password": ...}, "<role>": {...}}``.

    Every identity the fleet needs must be there; a missing one is an error naming it.
    """
    out: dict[str, Credentials] = {}
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
        out[key] = Credentials(entry["user"], entry["password"])
    if missing:
        raise FleetbusError(
            f"no user and password for {', '.join(missing)}"
            ' (each needs {"user": ..., "password": ...})'
        )
    return out


def basic_authorization(spec: FleetSpec, credentials: Mapping[str, Credentials]) -> str:
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


def _labels(component: str, role: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "fleetbus",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "fleetbus",
    }
    if role is not None:
        labels["fleetbus.dev/role"] = role
    return labels


def _meta(name: str, options: K8sOptions, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": labels, **extra}


def _secret(
    name: str, options: K8sOptions, data: dict[str, str], component: str, role: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(
            name,
            options,
            _labels(component, role),
            annotations={"fleetbus.dev/passwords": options.password_source},
        ),
        "type": "Opaque",
        "stringData": data,
    }


def _creds_env(secret: str) -> list[dict[str, Any]]:
    return [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}}
        for var in ("FLEETBUS_USER", "FLEETBUS_PASSWORD")
    ]


def _fleet_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    volume = {"name": "fleet", "configMap": {"name": "fleetbus-fleet"}}
    mount = {"name": "fleet", "mountPath": FLEET_MOUNT, "readOnly": True}
    return volume, mount


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _provision_job(options: K8sOptions) -> dict[str, Any]:
    volume, mount = _fleet_volume()
    labels = _labels("provision")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta("fleetbus-provision", options, labels),
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {
                            "name": "provision",
                            "image": options.fleetbus_image,
                            "command": [
                                "fleetbus",
                                "--server",
                                options.server_url,
                                "--fleet",
                                f"{FLEET_MOUNT}/{FLEET_KEY}",
                                "provision",
                            ],
                            "env": _creds_env("fleetbus-admin"),
                            "volumeMounts": [mount],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "securityContext": _container_security(),
                        }
                    ],
                    "volumes": [volume],
                },
            },
        },
    }


def _agent_deployment(role: str, name: str, options: K8sOptions) -> dict[str, Any]:
    volume, mount = _fleet_volume()
    labels = _labels("agent", name)
    selector = {"app.kubernetes.io/name": "fleetbus", "fleetbus.dev/role": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"fleetbus-agent-{name}", options, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 2 * AGENT_GRACE_SECONDS,
                    "containers": [
                        {
                            "name": "agent",
                            "image": options.fleetbus_image,
                            "command": [
                                "fleetbus",
                                "run",
                                "--grace",
                                str(AGENT_GRACE_SECONDS),
                                options.agent_module.replace("{role}", role),
                            ],
                            "env": [
                                {"name": "FLEETBUS_URL", "value": options.server_url},
                                {"name": "FLEETBUS_FLEET", "value": f"{FLEET_MOUNT}/{FLEET_KEY}"},
                                *_creds_env(f"fleetbus-{name}"),
                            ],
                            "volumeMounts": [mount],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "1Gi"},
                            },
                            "securityContext": _container_security(),
                        }
                    ],
                    "volumes": [volume],
                },
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (auth.conf, the fleet file) as literal blocks, and
    no anchors: a label map used twice is written twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _dump(*docs: dict[str, Any]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def per_role_authorization(spec: FleetSpec, credentials: Mapping[str, Credentials]) -> str:
    """The same ``authorization`` block `fleetbus up` runs: per-role least privilege."""
    from fleetbus.security import ADMIN, Credential, inbox_prefix, render_authorization

    creds = {
        key: Credential(
            user=c.user,
            password=c.password,
            inbox_prefix=inbox_prefix(key),
            role=None if key == ADMIN else key,
        )
        for key, c in credentials.items()
    }
    return render_authorization(spec, creds)


AUTHORIZATION: AuthorizationRenderer = per_role_authorization
"""The renderer of the ``authorization`` block: each role's least-privilege permissions."""


def render_k8s(
    spec: FleetSpec,
    options: K8sOptions | None = None,
    *,
    credentials: Mapping[str, Credentials] | None = None,
    authorization: AuthorizationRenderer | None = None,
) -> list[RenderedFile]:
    """Every file of the deployment directory, in apply order (the README last).

    ``authorization`` renders the server's ``authorization`` block; by default it is the one
    `fleetbus up` runs (:func:`per_role_authorization`)."""
    options = options or K8sOptions()
    authorization = authorization or per_role_authorization
    if not _DNS_LABEL.match(options.namespace):
        raise FleetbusError(
            f"namespace {options.namespace!r} is not a Kubernetes name: use lower-case letters,"
            " digits and -, starting and ending with a letter or digit, at most 63 characters"
        )
    names = _names(spec)
    widest = max(s.replicas for s in spec.streams.values())
    if options.replicas < widest:
        raise FleetbusError(
            f"{options.replicas} NATS servers cannot hold a stream with {widest} replicas:"
            f" use at least {widest} servers, or lower the streams' replicas"
        )
    creds_for = dict(credentials) if credentials is not None else placeholder_credentials(spec)
    missing = [key for key in (ADMIN, *spec.roles) if key not in creds_for]
    if missing:
        raise FleetbusError(f"no credentials for {', '.join(missing)}")

    auth_secret = _secret(
        "nats-auth", options, {AUTH_SECRET_KEY: authorization(spec, creds_for)}, "nats-auth"
    )
    client_secrets = [
        _secret(
            "fleetbus-admin",
            options,
            {
                "FLEETBUS_USER": creds_for[ADMIN].user,
                "FLEETBUS_PASSWORD": creds_for[ADMIN].password,
            },
            "credentials",
        )
    ]
    for role, name in names.items():
        client_secrets.append(
            _secret(
                f"fleetbus-{name}",
                options,
                {
                    "FLEETBUS_USER": creds_for[role].user,
                    "FLEETBUS_PASSWORD": creds_for[role].password,
                },
                "credentials",
                name,
            )
        )
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("fleetbus-fleet", options, _labels("fleet")),
        "data": {FLEET_KEY: fleet_yaml(spec)},
    }
    job = _provision_job(options)
    values = helm_values(spec, options)

    files = [
        RenderedFile("nats-values.yaml", yaml.safe_dump(values, sort_keys=False)),
        RenderedFile("nats-auth-secret.yaml", _dump(auth_secret), (auth_secret,)),
        RenderedFile("fleetbus-credentials.yaml", _dump(*client_secrets), tuple(client_secrets)),
        RenderedFile("fleet-configmap.yaml", _dump(configmap), (configmap,)),
        RenderedFile("provision-job.yaml", _dump(job), (job,)),
    ]
    for role, name in names.items():
        deployment = _agent_deployment(role, name, options)
        files.append(
            RenderedFile(f"agent-{name}-deployment.yaml", _dump(deployment), (deployment,))
        )
    files.append(RenderedFile("README.md", _readme(spec, options, names, files)))
    return files


def _readme(
    spec: FleetSpec, options: K8sOptions, names: Mapping[str, str], files: list[RenderedFile]
) -> str:
    ns = options.namespace
    agents = " ".join(f"-f agent-{n}-deployment.yaml" for n in names.values())
    placeholder = options.password_source == "placeholder"
    secrets_note = (
        "The passwords in `nats-auth-secret.yaml` and `fleetbus-credentials.yaml` are\n"
        f"placeholders (`{PLACEHOLDER_MARK}-...`). Replace each one, the same value in both\n"
        "files, before you apply them (see docs/kubernetes.md); keep real ones out of git.\n"
        if placeholder
        else "`nats-auth-secret.yaml` and `fleetbus-credentials.yaml` hold real passwords:\n"
        "apply them, then keep them out of git (or seal them).\n"
    )
    listing = "\n".join(f"- `{f.name}`" for f in files)
    return f"""\
# fleetbus on Kubernetes: fleet `{spec.prefix}`, namespace `{ns}`

Written by `fleetbus deploy k8s`: a {options.replicas}-node NATS JetStream cluster (the official
NATS Helm chart), the fleet file, a provisioning Job, and one Deployment per role
({", ".join(names)}).

{listing}

{secrets_note}
## Apply

```sh
kubectl create namespace {ns}
kubectl apply -n {ns} -f nats-auth-secret.yaml -f fleetbus-credentials.yaml
helm repo add nats https://nats-io.github.io/k8s/helm/charts/
helm repo update
helm install {options.release} nats/nats -n {ns} -f nats-values.yaml
kubectl rollout status -n {ns} statefulset/{options.release}
kubectl apply -n {ns} -f fleet-configmap.yaml -f provision-job.yaml
kubectl wait -n {ns} --for=condition=complete job/fleetbus-provision --timeout=5m
kubectl logs -n {ns} job/fleetbus-provision
```

Then build an image with fleetbus and your agents' code, set it (`--fleetbus-image`) and each
role's `MODULE:AGENT` in the Deployments, and start them:

```sh
kubectl apply -n {ns} {agents}
```

## Check

```sh
kubectl exec -n {ns} deploy/{options.release}-box -- \\
  nats --user "$ADMIN_USER" --password "$ADMIN_PASSWORD" stream ls
kubectl port-forward -n {ns} svc/{options.release} 4222:4222 &
fleetbus --server nats://127.0.0.1:4222 --fleet fleet.yaml \\
  --user "$ADMIN_USER" --password "$ADMIN_PASSWORD" status
```

`ADMIN_USER`/`ADMIN_PASSWORD` are in the `fleetbus-admin` Secret:
`kubectl get secret -n {ns} fleetbus-admin -o jsonpath='{{.data.FLEETBUS_PASSWORD}}' | base64 -d`.

After changing the fleet file: render again, `kubectl apply -f fleet-configmap.yaml`, delete and
re-apply `provision-job.yaml`, then `kubectl rollout restart` the agents.
"""

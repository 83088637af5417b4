"""The Kubernetes objects of ``fleetbus deploy k8s``: Secrets, the provisioning Job and the
agents' Deployments, and the YAML they are written as. Pure."""

from __future__ import annotations

from typing import Any

import yaml

from fleetbus.deploy.k8s_values import (
    AGENT_GRACE_SECONDS,
    FLEET_KEY,
    FLEET_MOUNT,
    K8sOptions,
)

__all__ = ["agent_deployment", "dump", "labels", "meta", "provision_job", "secret"]


def labels(component: str, role: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "fleetbus",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "fleetbus",
    }
    if role is not None:
        out["fleetbus.dev/role"] = role
    return out


def meta(name: str, options: K8sOptions, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": labels, **extra}


def secret(
    name: str, options: K8sOptions, data: dict[str, str], component: str, role: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(
            name,
            options,
            labels(component, role),
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


def provision_job(options: K8sOptions) -> dict[str, Any]:
    volume, mount = _fleet_volume()
    these = labels("provision")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("fleetbus-provision", options, these),
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": these},
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


def agent_deployment(role: str, name: str, options: K8sOptions) -> dict[str, Any]:
    volume, mount = _fleet_volume()
    these = labels("agent", name)
    selector = {"app.kubernetes.io/name": "fleetbus", "fleetbus.dev/role": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(f"fleetbus-agent-{name}", options, these),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": these},
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


def dump(*docs: dict[str, Any]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)

"""The Kubernetes objects of ``fleetbus deploy k8s``: Secrets, the provisioning Job, the
agents' Deployments, the metrics exporter (its Deployment, Service and ServiceMonitor) and
the YAML they are written as. Pure. (The PrometheusRule is ``deploy.prometheus``'s.)"""

from __future__ import annotations

from typing import Any

import yaml

from fleetbus.deploy.k8s_values import (
    AGENT_GRACE_SECONDS,
    FLEET_KEY,
    FLEET_MOUNT,
    K8sOptions,
)
from fleetbus.ops.metrics import DEFAULT_PORT

__all__ = [
    "agent_deployment",
    "dump",
    "labels",
    "meta",
    "metrics_deployment",
    "metrics_service",
    "provision_job",
    "secret",
    "service_monitor",
]

_METRICS_SELECTOR = {"app.kubernetes.io/name": "fleetbus", "app.kubernetes.io/component": "metrics"}


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


def _container(
    name: str,
    options: K8sOptions,
    command: list[str],
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A container of the fleetbus image, with the fleet file mounted."""
    _, mount = _fleet_volume()
    return {
        "name": name,
        "image": options.fleetbus_image,
        "command": command,
        "env": env,
        **extra,
        "volumeMounts": [mount],
        "resources": resources,
        "securityContext": _container_security(),
    }


def _resources(requests: tuple[str, str], limits: tuple[str, str]) -> dict[str, Any]:
    """CPU and memory, requested and at most."""
    return {
        "requests": {"cpu": requests[0], "memory": requests[1]},
        "limits": {"cpu": limits[0], "memory": limits[1]},
    }


def _admin_command(options: K8sOptions, *args: str) -> list[str]:
    """``fleetbus`` against the cluster's NATS with the mounted fleet file (credentials come
    from the environment)."""
    return [
        "fleetbus",
        "--server",
        options.server_url,
        "--fleet",
        f"{FLEET_MOUNT}/{FLEET_KEY}",
        *args,
    ]


def _pod(these: dict[str, str], container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    volume, _ = _fleet_volume()
    return {
        "metadata": {"labels": these},
        "spec": {
            **spec,
            # None of them talks to the Kubernetes API: a token in the pod would lend an agent
            # led astray whatever the namespace's default service account may do.
            "automountServiceAccountToken": False,
            "containers": [container],
            "volumes": [volume],
        },
    }


def _deployment(
    name: str,
    options: K8sOptions,
    these: dict[str, str],
    selector: dict[str, str],
    pod: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, options, these),
        "spec": {"replicas": 1, "selector": {"matchLabels": selector}, "template": pod},
    }


def provision_job(options: K8sOptions) -> dict[str, Any]:
    these = labels("provision")
    container = _container(
        "provision",
        options,
        _admin_command(options, "provision"),
        _creds_env("fleetbus-admin"),
        _resources(("100m", "128Mi"), ("500m", "256Mi")),
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("fleetbus-provision", options, these),
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 3600,
            "template": _pod(these, container, restartPolicy="OnFailure"),
        },
    }


def agent_deployment(role: str, name: str, options: K8sOptions) -> dict[str, Any]:
    these = labels("agent", name)
    selector = {"app.kubernetes.io/name": "fleetbus", "fleetbus.dev/role": name}
    container = _container(
        "agent",
        options,
        [
            "fleetbus",
            "run",
            "--grace",
            str(AGENT_GRACE_SECONDS),
            options.agent_module.replace("{role}", role),
        ],
        [
            {"name": "FLEETBUS_URL", "value": options.server_url},
            {"name": "FLEETBUS_FLEET", "value": f"{FLEET_MOUNT}/{FLEET_KEY}"},
            *_creds_env(f"fleetbus-{name}"),
        ],
        _resources(("100m", "256Mi"), ("1", "1Gi")),
    )
    pod = _pod(these, container, terminationGracePeriodSeconds=2 * AGENT_GRACE_SECONDS)
    return _deployment(f"fleetbus-agent-{name}", options, these, selector, pod)


def metrics_deployment(options: K8sOptions) -> dict[str, Any]:
    """``fleetbus metrics`` as the admin (it reads every consumer and the presence records),
    bound on the pod's address so Prometheus can scrape it; one replica is enough: a second
    would read the same numbers."""
    these = labels("metrics")
    probe = {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10}
    container = _container(
        "metrics",
        options,
        _admin_command(options, "metrics", "--host", "0.0.0.0", "--port", str(DEFAULT_PORT)),
        _creds_env("fleetbus-admin"),
        _resources(("50m", "96Mi"), ("500m", "256Mi")),
        ports=[{"name": "metrics", "containerPort": DEFAULT_PORT}],
        readinessProbe=probe,
        livenessProbe={**probe, "failureThreshold": 6},
    )
    pod = _pod(these, container)
    return _deployment("fleetbus-metrics", options, these, _METRICS_SELECTOR, pod)


def metrics_service(options: K8sOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("fleetbus-metrics", options, labels("metrics")),
        "spec": {
            "selector": _METRICS_SELECTOR,
            "ports": [{"name": "metrics", "port": DEFAULT_PORT, "targetPort": "metrics"}],
        },
    }


def service_monitor(options: K8sOptions) -> dict[str, Any]:
    """For the Prometheus Operator: scrape the exporter's Service every 30 seconds."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta("fleetbus-metrics", options, labels("metrics")),
        "spec": {
            "selector": {"matchLabels": labels("metrics")},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
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

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
- ``metrics.yaml``: ``fleetbus metrics`` (a Deployment and its Service);
- ``prometheus.yaml``: for the Prometheus Operator, a ServiceMonitor scraping it and the alert
  rules of ``fleetbus deploy prometheus-rules`` as a PrometheusRule;
- ``README.md``: the apply steps.

The passwords come in as ``Credential`` objects: :func:`placeholder_credentials` (the default,
marked ``REPLACE-ME``), or real ones the caller read or generated. The ``authorization`` block is
rendered by an :data:`AuthorizationRenderer`: by default :func:`per_role_authorization`, the
same least-privilege block `fleetbus up` runs; :func:`basic_authorization` (users only) remains
for clusters whose permissions are managed elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from fleetbus.deploy.k8s_manifests import (
    agent_deployment,
    dump,
    labels,
    meta,
    metrics_deployment,
    metrics_service,
    provision_job,
    secret,
    service_monitor,
)
from fleetbus.deploy.k8s_readme import readme
from fleetbus.deploy.k8s_values import (
    _DNS_LABEL,
    ADMIN,
    AUTH_SECRET_KEY,
    FLEET_KEY,
    AuthorizationRenderer,
    K8sOptions,
    RenderedFile,
    _names,
    fleet_yaml,
    helm_values,
    per_role_authorization,
    placeholder_credentials,
)
from fleetbus.deploy.prometheus import prometheus_rule
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.security import Credential

__all__ = ["render_k8s"]


def render_k8s(
    spec: FleetSpec,
    options: K8sOptions | None = None,
    *,
    credentials: Mapping[str, Credential] | None = None,
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

    auth_secret = secret(
        "nats-auth", options, {AUTH_SECRET_KEY: authorization(spec, creds_for)}, "nats-auth"
    )
    client_secrets = [
        secret(
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
            secret(
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
        "metadata": meta("fleetbus-fleet", options, labels("fleet")),
        "data": {FLEET_KEY: fleet_yaml(spec)},
    }
    job = provision_job(options)
    values = helm_values(spec, options)

    files = [
        # The routes' password is in the values: a route is let past every permission.
        RenderedFile("nats-values.yaml", yaml.safe_dump(values, sort_keys=False), private=True),
        RenderedFile("nats-auth-secret.yaml", dump(auth_secret), (auth_secret,), private=True),
        RenderedFile(
            "fleetbus-credentials.yaml", dump(*client_secrets), tuple(client_secrets), private=True
        ),
        RenderedFile("fleet-configmap.yaml", dump(configmap), (configmap,)),
        RenderedFile("provision-job.yaml", dump(job), (job,)),
    ]
    for role, name in names.items():
        deployment = agent_deployment(role, name, options)
        files.append(RenderedFile(f"agent-{name}-deployment.yaml", dump(deployment), (deployment,)))
    exporter = (metrics_deployment(options), metrics_service(options))
    files.append(RenderedFile("metrics.yaml", dump(*exporter), exporter))
    operator = (service_monitor(options), prometheus_rule(spec, options))
    files.append(RenderedFile("prometheus.yaml", dump(*operator), operator))
    files.append(RenderedFile("README.md", readme(spec, options, names, files)))
    return files

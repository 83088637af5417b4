"""The README that ``fleetbus deploy k8s`` writes beside the manifests: the apply steps."""

from __future__ import annotations

from collections.abc import Mapping

from fleetbus.deploy.k8s_values import PLACEHOLDER_MARK, K8sOptions, RenderedFile
from fleetbus.fleet import FleetSpec
from fleetbus.ops.metrics import DEFAULT_PORT

__all__ = ["readme"]


def readme(
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
NATS Helm chart), the fleet file, a provisioning Job, one Deployment per role
({", ".join(names)}), and `fleetbus metrics` with its alert rules.

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

Then build an image with fleetbus and your agents' code (fleetbus's `Dockerfile` is the base:
`docker build -t fleetbus .` in its source tree, then `FROM fleetbus` and `COPY` your
modules), set it (`--fleetbus-image`) and each role's `MODULE:AGENT` in the Deployments, and
start them:

```sh
kubectl apply -n {ns} {agents}
```

## Monitor

`fleetbus metrics` (as the admin) serves the fleet's streams, consumers, dead letters and
agents to Prometheus on port {DEFAULT_PORT} of Service `fleetbus-metrics`; with the Prometheus
Operator, `prometheus.yaml` adds a ServiceMonitor for it and the alert rules of
`fleetbus status` (a PrometheusRule; see docs/observability.md):

```sh
kubectl apply -n {ns} -f metrics.yaml
kubectl apply -n {ns} -f prometheus.yaml
# a Prometheus that selects by label (kube-prometheus-stack: release=<its release>):
kubectl label -n {ns} servicemonitor/fleetbus-metrics prometheusrule/fleetbus-alerts \\
  release=kube-prometheus-stack
```

Without the Operator, scrape `fleetbus-metrics.{ns}.svc:{DEFAULT_PORT}` and load the rules from
`fleetbus deploy prometheus-rules`.

## Check

```sh
ADMIN_USER=admin
ADMIN_PASSWORD=$(kubectl get secret -n {ns} fleetbus-admin \
  -o jsonpath='{{.data.FLEETBUS_PASSWORD}}' | base64 -d)
kubectl exec -n {ns} deploy/{options.release}-box -- \\
  nats --user "$ADMIN_USER" --password "$ADMIN_PASSWORD" stream ls
kubectl port-forward -n {ns} svc/{options.release} 4222:4222 &
fleetbus --server nats://127.0.0.1:4222 --fleet fleet.yaml \\
  --user "$ADMIN_USER" --password "$ADMIN_PASSWORD" status
```

(The admin's password is in the `fleetbus-admin` Secret, as the first lines read it.)

After changing the fleet file: render again, `kubectl apply -f fleet-configmap.yaml`, delete and
re-apply `provision-job.yaml`, then `kubectl rollout restart` the agents.
"""

"""``fleetbus deploy k8s``: the rendered manifests against the Kubernetes schemas, the Helm values
against the NATS chart's keys, the auth include against a real nats-server, and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner, Result

from fleetbus.cli import app
from fleetbus.deploy.k8s import render_k8s
from fleetbus.deploy.k8s_values import (
    AUTH_INCLUDE,
    AUTH_MOUNT,
    K8sOptions,
    RenderedFile,
    fleet_yaml,
    helm_values,
    placeholder_credentials,
)
from fleetbus.deploy.prometheus import prometheus_rules
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec, parse_fleet, seed_fleet
from fleetbus.security import Credential, ensure_credentials
from fleetbus.server.binary import find_nats_server

K8S_VERSION = "1.37.0"
"""The newest Kubernetes the installed kubernetes-validate bundles schemas for."""

# Value paths of the NATS Helm chart (nats-io/k8s helm/charts/nats, 1.x) that fleetbus sets,
# as read in the chart's values.yaml, its config templates (files/config/*.yaml) and its Go
# tests (test/config_test.go). Under `merge`, `patch` and `topologySpreadConstraints` the
# chart takes free-form content, so the walk stops there.
CHART_KEYS = {
    "config",
    "config.cluster",
    "config.cluster.enabled",
    "config.cluster.replicas",
    "config.cluster.merge",
    "config.cluster.routeURLs",
    "config.cluster.routeURLs.user",
    "config.cluster.routeURLs.password",
    "config.jetstream",
    "config.jetstream.enabled",
    "config.jetstream.merge",
    "config.jetstream.fileStore",
    "config.jetstream.fileStore.enabled",
    "config.jetstream.fileStore.dir",
    "config.jetstream.fileStore.maxSize",
    "config.jetstream.fileStore.pvc",
    "config.jetstream.fileStore.pvc.enabled",
    "config.jetstream.fileStore.pvc.size",
    "config.jetstream.memoryStore",
    "config.jetstream.memoryStore.enabled",
    "config.jetstream.memoryStore.maxSize",
    "config.merge",
    "container",
    "container.image",
    "container.image.repository",
    "container.image.tag",
    "container.merge",
    "container.patch",
    "podTemplate",
    "podTemplate.patch",
    "podTemplate.topologySpreadConstraints",
    "natsBox",
    "natsBox.enabled",
}
FREE_FORM = {"merge", "patch", "topologySpreadConstraints"}


@pytest.fixture(scope="module")
def seed() -> FleetSpec:
    return seed_fleet()


@pytest.fixture(scope="module")
def files(seed: FleetSpec) -> dict[str, RenderedFile]:
    return {f.name: f for f in render_k8s(seed)}


def manifests(files: dict[str, RenderedFile]) -> Iterator[dict[str, Any]]:
    for f in files.values():
        yield from f.manifests


def by_kind(files: dict[str, RenderedFile], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests(files) if m["kind"] == kind}


def strict_validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


OPERATOR = "monitoring.coreos.com/v1"
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OPERATOR_SPECS: dict[str, dict[str, Any]] = {
    # The part of the Prometheus Operator's CRDs (monitoring.coreos.com/v1) fleetbus writes;
    # kubernetes-validate bundles no CRD, and the API server prunes fields a CRD lacks.
    "PrometheusRule": {
        "type": "object",
        "additionalProperties": False,
        "required": ["groups"],
        "properties": {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "rules"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["alert", "expr"],
                                "properties": {
                                    "alert": {"type": "string"},
                                    "expr": {"type": "string"},
                                    "for": {"type": "string", "pattern": "^(0|[0-9]+[smhdwy])$"},
                                    "labels": _STR_MAP,
                                    "annotations": _STR_MAP,
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    "ServiceMonitor": {
        "type": "object",
        "additionalProperties": False,
        "required": ["selector", "endpoints"],
        "properties": {
            "selector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"matchLabels": _STR_MAP},
            },
            "endpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "interval": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                    },
                },
            },
        },
    },
}


def validate(manifest: dict[str, Any]) -> None:
    """Strictly, against Kubernetes' schemas; the Prometheus Operator's kinds against theirs
    (their metadata as a Kubernetes object's)."""
    if manifest["apiVersion"] != OPERATOR:
        strict_validate(manifest)
        return
    assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest["metadata"]}
    strict_validate(carrier)
    jsonschema.validate(manifest["spec"], OPERATOR_SPECS[manifest["kind"]])


# -- Kubernetes schemas ------------------------------------------------------------------------


def test_the_validator_is_strict_and_offline() -> None:
    """The check below means something: an unknown field fails, and the schemas are bundled."""
    assert kubernetes_validate.latest_version() == K8S_VERSION
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}
    strict_validate(cm)
    with pytest.raises(kubernetes_validate.ValidationError):
        strict_validate({**cm, "surprise": True})
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        strict_validate({**job, "spec": {"template": {"spec": {"containerz": []}}}})
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert (schemas / "v1.37.0-local-strict" / "deployment-apps-v1.json").is_file()


def test_every_manifest_validates_strictly(files: dict[str, RenderedFile]) -> None:
    kinds = []
    for f in files.values():
        if not f.name.endswith(".yaml") or f.name == "nats-values.yaml":
            assert not f.manifests
            continue
        written = [d for d in yaml.safe_load_all(f.text) if d is not None]
        assert written == list(f.manifests), f.name  # what is validated is what is written
        assert written, f.name
        for manifest in written:
            validate(manifest)
            assert manifest["metadata"]["namespace"] == "genbrain"
            kinds.append(manifest["kind"])
    assert sorted(set(kinds)) == [
        "ConfigMap",
        "Deployment",
        "Job",
        "PrometheusRule",
        "Secret",
        "Service",
        "ServiceMonitor",
    ]


def test_manifests_validate_for_another_fleet_and_namespace() -> None:
    spec = parse_fleet(
        fleet_yaml(seed_fleet()).replace("backend:", "data_eng:").replace("backend", "data_eng"),
        "<test>",
    )
    options = K8sOptions(namespace="agents-prod", replicas=5, fleetbus_image="reg:5000/fb:1.2")
    files = {f.name: f for f in render_k8s(spec, options)}
    assert "agent-data-eng-deployment.yaml" in files
    for manifest in manifests(files):
        validate(manifest)
    values = yaml.safe_load(files["nats-values.yaml"].text)
    assert values["config"]["cluster"]["replicas"] == 5
    deployment = by_kind(files, "Deployment")["fleetbus-agent-data-eng"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg:5000/fb:1.2"
    assert container["command"][-1] == "your_agents.data_eng:agent"
    env = {e["name"]: e for e in container["env"]}
    assert env["FLEETBUS_URL"]["value"] == "nats://nats.agents-prod.svc:4222"


# -- Helm values -------------------------------------------------------------------------------


def _paths(value: Any, prefix: str = "") -> Iterator[str]:
    if not isinstance(value, dict):
        return
    for key, child in value.items():
        path = f"{prefix}.{key}" if prefix else key
        yield path
        if key not in FREE_FORM:
            yield from _paths(child, path)


def test_helm_values_use_the_charts_keys(files: dict[str, RenderedFile]) -> None:
    values = yaml.safe_load(files["nats-values.yaml"].text)
    assert values == helm_values(seed_fleet(), K8sOptions())
    assert set(_paths(values)) <= CHART_KEYS, set(_paths(values)) - CHART_KEYS


def test_helm_values_state_the_seed_cluster(files: dict[str, RenderedFile]) -> None:
    values = yaml.safe_load(files["nats-values.yaml"].text)
    config = values["config"]
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == 3
    assert config["cluster"]["merge"] == {"name": "agent-cluster"}  # seed: cluster name
    # routes take only the cluster's own credentials: no pod routes a server of its own in
    assert config["cluster"]["routeURLs"] == {
        "user": "route",
        "password": "REPLACE-ME-route-password",
    }
    js = config["jetstream"]
    assert js["enabled"] is True
    assert js["fileStore"]["enabled"] is True
    assert js["fileStore"]["pvc"]["enabled"] is True
    # seed: max_file 50GB; the volume holds it with room to spare, the server's limit is exact
    assert js["fileStore"]["pvc"]["size"] == "52Gi"
    assert 52 * 1024**3 >= 50 * 10**9 * 1.1
    assert js["fileStore"]["maxSize"] == "50000000000"
    assert js["memoryStore"] == {"enabled": True, "maxSize": "2000000000"}
    assert "merge" not in js  # sync_always is off in the seed
    assert config["merge"] == {"max_payload": 1024 * 1024, "$include": AUTH_INCLUDE}
    assert values["container"]["image"] == {"repository": "nats", "tag": "2.15-alpine"}
    memory = values["container"]["merge"]["resources"]["limits"]["memory"]
    assert int(memory.removesuffix("Gi")) * 1024**3 > 2 * 10**9  # above memoryStore.maxSize


def test_sync_always_sets_the_sync_interval(seed: FleetSpec) -> None:
    spec = seed.model_copy(update={"server": seed.server.model_copy(update={"sync_always": True})})
    values = helm_values(spec, K8sOptions())
    assert values["config"]["jetstream"]["merge"] == {"sync_interval": "always"}


def test_the_auth_secret_is_mounted_where_the_include_points(
    files: dict[str, RenderedFile],
) -> None:
    values = yaml.safe_load(files["nats-values.yaml"].text)
    [mount_patch] = values["container"]["patch"]
    [volume_patch] = values["podTemplate"]["patch"]
    assert mount_patch["op"] == volume_patch["op"] == "add"
    assert mount_patch["path"] == "/volumeMounts/-"
    assert volume_patch["path"] == "/spec/volumes/-"
    mount, volume = mount_patch["value"], volume_patch["value"]
    assert mount["name"] == volume["name"]
    assert mount["mountPath"] == AUTH_MOUNT
    # nats.conf lives in /etc/nats-config: the include resolves into the Secret's mount
    assert os.path.normpath(f"/etc/nats-config/{AUTH_INCLUDE}") == f"{AUTH_MOUNT}/auth.conf"
    secret = by_kind(files, "Secret")[volume["secret"]["secretName"]]
    assert "auth.conf" in secret["stringData"]
    # The patched-in volume and mount are valid Kubernetes objects themselves.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nats-0"},
        "spec": {
            "containers": [{"name": "nats", "image": "nats", "volumeMounts": [mount]}],
            "volumes": [volume],
        },
    }
    strict_validate(pod)


def _chart_like_nats_conf(values: dict[str, Any]) -> str:
    """nats.conf as the chart renders it from these values (its templates, abridged)."""
    config = values["config"]
    js = config["jetstream"]
    lines = [
        "server_name: nats-0",
        "port: 4222",
        "http_port: 8222",
        "lame_duck_grace_period: 10s",
        "lame_duck_duration: 30s",
        "cluster {",
        f"  name: {json.dumps(config['cluster']['merge']['name'])}",
        "  port: 6222",
        "  no_advertise: true",
        "  routes: [",
        *(f"    nats://nats-{i}.nats-headless:6222" for i in range(config["cluster"]["replicas"])),
        "  ]",
        "}",
        "jetstream {",
        f"  max_memory_store: {js['memoryStore']['maxSize']}",
        f"  store_dir: {js['fileStore']['dir']}",
        f"  max_file_store: {js['fileStore']['maxSize']}",
        *(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in js.get("merge", {}).items()),
        "}",
    ]
    for key, value in config["merge"].items():
        if key.endswith("$include"):
            lines.append(f"include {value};")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("sync_always", [False, True])
def test_nats_server_accepts_the_config_and_the_auth_include(
    seed: FleetSpec, tmp_path: Path, sync_always: bool
) -> None:
    spec = seed.model_copy(
        update={"server": seed.server.model_copy(update={"sync_always": sync_always})}
    )
    files = {f.name: f for f in render_k8s(spec)}
    values = yaml.safe_load(files["nats-values.yaml"].text)
    secret = yaml.safe_load(files["nats-auth-secret.yaml"].text)
    etc = tmp_path / "etc"
    (etc / "nats-config").mkdir(parents=True)
    (etc / "nats-auth").mkdir()
    conf = etc / "nats-config" / "nats.conf"
    conf.write_text(_chart_like_nats_conf(values))
    (etc / "nats-auth" / "auth.conf").write_text(secret["stringData"]["auth.conf"])
    result = subprocess.run(
        [str(find_nats_server()), "-c", str(conf), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # and the include is really read: without the Secret's file the config is refused
    (etc / "nats-auth" / "auth.conf").unlink()
    result = subprocess.run(
        [str(find_nats_server()), "-c", str(conf), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "auth.conf" in result.stdout + result.stderr


# -- the Job, the Deployments, the ConfigMap, the Secrets --------------------------------------


def test_the_job_provisions_as_admin(files: dict[str, RenderedFile]) -> None:
    job = by_kind(files, "Job")["fleetbus-provision"]
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == [
        "fleetbus",
        "--server",
        "nats://nats.genbrain.svc:4222",
        "--fleet",
        "/etc/fleetbus/fleet.yaml",
        "provision",
    ]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs == {
        "FLEETBUS_USER": {"name": "fleetbus-admin", "key": "FLEETBUS_USER"},
        "FLEETBUS_PASSWORD": {"name": "fleetbus-admin", "key": "FLEETBUS_PASSWORD"},
    }
    assert set(refs["FLEETBUS_USER"].values()) - {"FLEETBUS_USER"} <= set(by_kind(files, "Secret"))
    [mount] = container["volumeMounts"]
    [volume] = pod["volumes"]
    assert mount["mountPath"] == "/etc/fleetbus" and mount["name"] == volume["name"]
    assert volume["configMap"]["name"] in by_kind(files, "ConfigMap")


def test_every_role_has_a_deployment(seed: FleetSpec, files: dict[str, RenderedFile]) -> None:
    deployments = by_kind(files, "Deployment")
    secrets = by_kind(files, "Secret")
    assert set(deployments) == {f"fleetbus-agent-{role}" for role in seed.roles} | {
        "fleetbus-metrics"
    }
    for role in seed.roles:
        assert f"agent-{role}-deployment.yaml" in files
        spec = deployments[f"fleetbus-agent-{role}"]["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        )
        pod = spec["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > 30  # `fleetbus run --grace 30`
        [container] = pod["containers"]
        command = container["command"]
        assert command[:2] == ["fleetbus", "run"]
        assert command[command.index("--grace") + 1] == "30"
        assert command[-1] == f"your_agents.{role}:agent"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = {e["name"]: e for e in container["env"]}
        assert env["FLEETBUS_URL"]["value"] == "nats://nats.genbrain.svc:4222"
        assert env["FLEETBUS_FLEET"]["value"] == "/etc/fleetbus/fleet.yaml"
        for var in ("FLEETBUS_USER", "FLEETBUS_PASSWORD"):
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": f"fleetbus-{role}", "key": var}
            assert var in secrets[ref["name"]]["stringData"]


def test_no_pod_of_fleetbus_holds_a_kubernetes_api_token(files: dict[str, RenderedFile]) -> None:
    """None of them talks to the Kubernetes API; a mounted token would lend an agent led
    astray whatever the namespace's default service account may do."""
    pods = [d["spec"]["template"]["spec"] for d in by_kind(files, "Deployment").values()]
    pods += [j["spec"]["template"]["spec"] for j in by_kind(files, "Job").values()]
    assert len(pods) > 5
    assert all(pod["automountServiceAccountToken"] is False for pod in pods)


def test_the_exporter_runs_as_the_admin_and_prometheus_finds_it(
    files: dict[str, RenderedFile],
) -> None:
    deployment = by_kind(files, "Deployment")["fleetbus-metrics"]
    assert files["metrics.yaml"].manifests[0] == deployment
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    command = container["command"]
    assert command[command.index("metrics") :] == ["metrics", "--host", "0.0.0.0", "--port", "9465"]
    # the command line is one fleetbus accepts
    help_run = CliRunner().invoke(app, [*command[1:], "--help"])
    assert help_run.exit_code == 0, help_run.output
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert refs == {"FLEETBUS_USER": "fleetbus-admin", "FLEETBUS_PASSWORD": "fleetbus-admin"}
    [port] = container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": port["name"]}
    service = by_kind(files, "Service")["fleetbus-metrics"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    monitor = by_kind(files, "ServiceMonitor")["fleetbus-metrics"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [service_port["name"]]


def test_the_prometheus_rule_holds_the_alert_rules(
    seed: FleetSpec, files: dict[str, RenderedFile]
) -> None:
    rule = by_kind(files, "PrometheusRule")["fleetbus-alerts"]
    assert rule["spec"]["groups"] == prometheus_rules(seed)
    spec = seed.model_copy(update={"alerts": seed.alerts.model_copy(update={"ack_pending": 9})})
    [changed] = [
        m for m in manifests({f.name: f for f in render_k8s(spec)}) if m["kind"] == "PrometheusRule"
    ]
    exprs = [r["expr"] for g in changed["spec"]["groups"] for r in g["rules"]]
    assert any(e.startswith("fleetbus_consumer_ack_pending > 9") for e in exprs)


def test_the_configmap_holds_the_fleet_file(
    seed: FleetSpec, files: dict[str, RenderedFile]
) -> None:
    [configmap] = by_kind(files, "ConfigMap").values()
    assert parse_fleet(configmap["data"]["fleet.yaml"], "<configmap>") == seed


def test_client_secrets_match_the_servers_users(
    seed: FleetSpec, files: dict[str, RenderedFile]
) -> None:
    secrets = by_kind(files, "Secret")
    auth = secrets["nats-auth"]["stringData"]["auth.conf"]
    # The server holds bcrypt hashes only; each client's password must match its hash.
    users = dict(re.findall(r'\{user: "([^"]+)", password: "([^"]+)"', auth))
    clients = [secrets["fleetbus-admin"], *(secrets[f"fleetbus-{r}"] for r in seed.roles)]
    assert len(users) == len(clients) == len(seed.roles) + 1
    for secret in clients:
        data = secret["stringData"]
        hashed = users[data["FLEETBUS_USER"]]
        assert hashed.startswith("$2") and data["FLEETBUS_PASSWORD"] not in auth
        assert bcrypt.checkpw(data["FLEETBUS_PASSWORD"].encode(), hashed.encode())
        assert data["FLEETBUS_PASSWORD"].startswith("REPLACE-ME-")
        assert secret["metadata"]["annotations"]["fleetbus.dev/passwords"] == "placeholder"


def test_a_renderer_with_permissions_plugs_in(seed: FleetSpec) -> None:
    def renderer(spec: FleetSpec, creds: dict[str, Credential]) -> str:
        return "authorization { users: [] }  # " + ",".join(sorted(creds)) + "\n"

    files = {f.name: f for f in render_k8s(seed, authorization=renderer)}
    auth = by_kind(files, "Secret")["nats-auth"]["stringData"]["auth.conf"]
    assert auth == "authorization { users: [] }  # admin,backend,ceo,cso,cto,devops\n"


def test_too_few_servers_for_the_streams_is_an_error(seed: FleetSpec) -> None:
    with pytest.raises(FleetbusError, match="3 replicas"):
        render_k8s(seed, K8sOptions(replicas=1))


@pytest.mark.parametrize("namespace", ["Gen_Brain", "-x", "a" * 64, ""])
def test_a_namespace_kubernetes_refuses_is_an_error(seed: FleetSpec, namespace: str) -> None:
    with pytest.raises(FleetbusError, match="not a Kubernetes name"):
        render_k8s(seed, K8sOptions(namespace=namespace))


def test_missing_credentials_is_an_error(seed: FleetSpec) -> None:
    creds = placeholder_credentials(seed)
    del creds["cso"]
    with pytest.raises(FleetbusError, match="cso"):
        render_k8s(seed, credentials=creds)


# -- the CLI -----------------------------------------------------------------------------------


SECRET_FILES = {"nats-auth-secret.yaml", "fleetbus-credentials.yaml"}
CLIENT_SECRETS = "fleetbus-credentials.yaml"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("FLEETBUS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def real(workdir: Path) -> dict[str, str]:
    """The passwords `fleetbus up` would have generated in ./.fleetbus/auth/."""
    made = ensure_credentials(workdir / ".fleetbus", seed_fleet())
    return {identity: cred.password for identity, cred in made.items()}


def fleetbus(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def written(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


def test_cli_writes_every_file_to_out(workdir: Path, files: dict[str, RenderedFile]) -> None:
    result = fleetbus("deploy", "k8s", "--out", "deploy/k8s")
    assert result.exit_code == 0, result.output
    out = written(workdir / "deploy" / "k8s")
    expected = {f.name: f.text for f in files.values()}
    assert out.keys() == expected.keys()
    # The auth Secret holds freshly salted bcrypt hashes: equal but for the hashes.
    unsalted = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
    for name in expected:
        assert unsalted.sub("HASH", out[name]) == unsalted.sub("HASH", expected[name]), name
    assert "helm install nats nats/nats -n genbrain -f nats-values.yaml" in out["README.md"]
    assert "https://nats-io.github.io/k8s/helm/charts/" in out["README.md"]


def test_cli_refuses_to_overwrite_without_force(workdir: Path) -> None:
    out = workdir / "k8s"
    out.mkdir()
    (out / "nats-values.yaml").write_text("mine\n")
    result = fleetbus("deploy", "k8s", "--out", str(out))
    assert result.exit_code == 1
    assert "already has nats-values.yaml" in result.stderr and "--force" in result.stderr
    assert written(out) == {"nats-values.yaml": "mine\n"}  # nothing else written either
    result = fleetbus("deploy", "k8s", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert (out / "nats-values.yaml").read_text() != "mine\n"
    assert len(written(out)) == 13


def test_no_real_secret_without_with_secrets(workdir: Path, real: dict[str, str]) -> None:
    result = fleetbus("deploy", "k8s", "--out", "k8s")
    assert result.exit_code == 0, result.output
    text = "".join(written(workdir / "k8s").values())
    for password in real.values():
        assert password not in text
    assert "REPLACE-ME-admin-password" in text


def test_with_secrets_puts_them_only_in_the_secret_files(
    workdir: Path, real: dict[str, str]
) -> None:
    result = fleetbus("deploy", "k8s", "--out", "k8s", "--with-secrets", ".fleetbus")
    assert result.exit_code == 0, result.output
    assert "real passwords" in result.stderr
    out = written(workdir / "k8s")
    for name, text in out.items():
        assert "REPLACE-ME" not in text, name
        for identity, password in real.items():
            # Plain passwords only where clients read them; the server gets hashes.
            assert (password in text) == (name == CLIENT_SECRETS), (name, identity)
    for name in SECRET_FILES:
        for doc in yaml.safe_load_all(out[name]):
            assert doc["metadata"]["annotations"]["fleetbus.dev/passwords"] == "data-dir"


@pytest.mark.parametrize(
    "passwords", [["--with-secrets", ".fleetbus"], ["--generate-passwords"], []]
)
def test_the_secret_files_are_readable_by_their_owner_only(
    workdir: Path, real: dict[str, str], passwords: list[str]
) -> None:
    """Real passwords on a shared host: another user (an agent process under its own account,
    say) must not read them, nor the routes' password in the Helm values. The other files
    keep the usual mode."""
    umask = os.umask(0o022)
    try:
        result = fleetbus("deploy", "k8s", "--out", "k8s", *passwords)
        assert result.exit_code == 0, result.output
        modes = {p.name: p.stat().st_mode & 0o777 for p in (workdir / "k8s").iterdir()}
        result = fleetbus("deploy", "k8s", "--out", "k8s", "--force", *passwords)
        assert result.exit_code == 0, result.output
    finally:
        os.umask(umask)
    for name in SECRET_FILES | {"nats-values.yaml"}:
        assert modes[name] == 0o600, name
    assert modes["fleet-configmap.yaml"] == 0o644  # not made private along with them
    for name in SECRET_FILES:  # and so they stay when written over
        assert (workdir / "k8s" / name).stat().st_mode & 0o777 == 0o600, name


def test_with_secrets_names_what_is_missing(workdir: Path, real: dict[str, str]) -> None:
    for role in ("ceo", "cto", "backend", "devops", "cso"):
        (workdir / ".fleetbus" / "auth" / f"{role}.json").unlink()
    result = fleetbus("deploy", "k8s", "--out", "k8s", "--with-secrets", ".fleetbus")
    assert result.exit_code == 1
    assert "ceo, cto, backend, devops, cso" in result.stderr
    assert not (workdir / "k8s").exists()


def test_generated_passwords_are_random_and_only_in_the_secret_files(workdir: Path) -> None:
    assert fleetbus("deploy", "k8s", "-o", "a", "--generate-passwords").exit_code == 0
    assert fleetbus("deploy", "k8s", "-o", "b", "--generate-passwords").exit_code == 0
    a, b = written(workdir / "a"), written(workdir / "b")
    for name in SECRET_FILES:
        assert a[name] != b[name]
    auth = yaml.safe_load(a["nats-auth-secret.yaml"])["stringData"]["auth.conf"]
    [admin_password] = [
        doc["stringData"]["FLEETBUS_PASSWORD"]
        for doc in yaml.safe_load_all(a["fleetbus-credentials.yaml"])
        if doc["metadata"]["name"] == "fleetbus-admin"
    ]
    [admin_hash] = re.findall(r'\{user: "admin", password: "([^"]+)"', auth)
    assert len(admin_password) >= 32
    assert bcrypt.checkpw(admin_password.encode(), admin_hash.encode())
    for name, text in a.items():
        assert (admin_password in text) == (name == CLIENT_SECRETS), name
        assert "REPLACE-ME" not in text


def test_cli_options_reach_the_manifests(workdir: Path) -> None:
    result = fleetbus(
        "deploy",
        "k8s",
        "--out",
        "k8s",
        "--namespace",
        "fleet",
        "--image",
        "nats:2.15.1-alpine",
        "--fleetbus-image",
        "ghcr.io/acme/agents:3",
    )
    assert result.exit_code == 0, result.output
    out = written(workdir / "k8s")
    values = yaml.safe_load(out["nats-values.yaml"])
    assert values["container"]["image"] == {"repository": "nats", "tag": "2.15.1-alpine"}
    job = yaml.safe_load(out["provision-job.yaml"])
    assert job["metadata"]["namespace"] == "fleet"
    assert (
        "nats://nats.fleet.svc:4222" in job["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/agents:3"
    assert "-n fleet" in out["README.md"]

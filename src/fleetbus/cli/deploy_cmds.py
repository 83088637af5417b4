"""``fleetbus deploy k8s`` and ``fleetbus deploy compose``: write the files that run the fleet
on Kubernetes, or under docker compose on one machine; ``deploy prometheus-rules`` and
``deploy grafana``: the alert rules and the dashboard that watch it."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Protocol

import typer

from fleetbus._files import write_file, write_private
from fleetbus.cli._common import OutFile, console, err_console, fail, guard, print_or_write, state
from fleetbus.deploy.grafana import render_dashboard
from fleetbus.deploy.images import FLEETBUS_IMAGE, NATS_IMAGE
from fleetbus.deploy.k8s import render_k8s
from fleetbus.deploy.k8s_values import (
    K8sOptions,
    PasswordSource,
    make_credential,
    placeholder_credentials,
)
from fleetbus.deploy.prometheus import DEFAULT_STALE_AFTER, render_rules
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.security import Credential

deploy_app = typer.Typer(
    name="deploy",
    help="Write what runs the fleet on a platform (Kubernetes, docker compose) and what"
    " watches it (Prometheus rules, a Grafana dashboard).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app)


class _File(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def private(self) -> bool: ...


def _write_files(out: Path, files: Sequence[_File], *, force: bool) -> None:
    """Write ``files`` under ``out``, the ones holding passwords readable by their owner only;
    refuse to write over what is there without ``--force``."""
    existing = [f.name for f in files if (out / f.name).exists()]
    if existing and not force:
        named = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if existing[3:] else "")
        fail(f"{out} already has {named}; use --force to overwrite")
    try:
        for f in files:
            path = out / f.name
            path.parent.mkdir(parents=True, exist_ok=True)
            (write_private if f.private else write_file)(path, f.text)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")


def _read_credentials(spec: FleetSpec, data_dir: Path) -> dict[str, Credential]:
    """The passwords `fleetbus up` generated in ``data_dir/auth/`` (admin and every role)."""
    from fleetbus.security import ADMIN, load_credential

    out: dict[str, Credential] = {}
    missing: list[str] = []
    for identity in (ADMIN, *spec.roles):
        cred = load_credential(data_dir, identity)
        if cred is None:
            missing.append(identity)
        else:
            out[identity] = cred
    if missing:
        raise FleetbusError(
            f"{data_dir}/auth/ has no credentials for {', '.join(missing)}"
            " (`fleetbus up` writes them; --with-secrets reads that data dir)"
        )
    return out


def _generated_credentials(spec: FleetSpec) -> dict[str, Credential]:
    return {
        key: make_credential(key, c.user, secrets.token_urlsafe(24))
        for key, c in placeholder_credentials(spec).items()
    }


def _route_password(with_secrets: Path | None, generate: bool) -> str:
    """The nodes' route password: `fleetbus up`'s (auth/route.json), a new one, or the
    placeholder."""
    if with_secrets is not None:
        from fleetbus.security.credentials import ensure_route_credential

        return guard(lambda: ensure_route_credential(with_secrets))[1]
    return secrets.token_urlsafe(24) if generate else K8sOptions().route_password


@deploy_app.command("k8s")
def k8s(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write.")] = Path("k8s"),
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "genbrain",
    image: Annotated[str, typer.Option(help="nats-server image.")] = NATS_IMAGE,
    fleetbus_image: Annotated[
        str, typer.Option(help="Image with fleetbus and your agents' code.")
    ] = FLEETBUS_IMAGE,
    replicas: Annotated[int, typer.Option(min=1, help="NATS servers in the cluster.")] = 3,
    agent_module: Annotated[
        str, typer.Option(help="`fleetbus run` target per role; {role} is replaced.")
    ] = "your_agents.{role}:agent",
    with_secrets: Annotated[
        Path | None,
        typer.Option(
            "--with-secrets",
            metavar="DATA_DIR",
            help="Use the real users and passwords `fleetbus up` wrote in DATA_DIR/auth/.",
        ),
    ] = None,
    generate_passwords: Annotated[
        bool, typer.Option("--generate-passwords", help="Random passwords, not placeholders.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Helm values for a NATS JetStream cluster, its auth Secret, the fleet ConfigMap, a
    provisioning Job and one Deployment per role, with the apply steps in README.md."""
    if with_secrets is not None and generate_passwords:
        fail("use --with-secrets or --generate-passwords, not both")
    spec = guard(state(ctx).fleet)
    source: PasswordSource = "placeholder"
    credentials: dict[str, Credential] | None = None
    if with_secrets is not None:
        source, credentials = "data-dir", guard(lambda: _read_credentials(spec, with_secrets))
    elif generate_passwords:
        source, credentials = "generated", _generated_credentials(spec)
    route = _route_password(with_secrets, generate_passwords)
    options = K8sOptions(
        namespace=namespace,
        nats_image=image,
        fleetbus_image=fleetbus_image,
        replicas=replicas,
        agent_module=agent_module,
        password_source=source,
        route_password=route,
    )
    files = guard(lambda: render_k8s(spec, options, credentials=credentials))
    _write_files(out, files, force=force)
    console.print(
        f"wrote {len(files)} files to {out}: NATS x{replicas} in namespace {namespace},"
        f" {len(spec.roles)} agent Deployments"
    )
    if source == "placeholder":
        console.print(
            f"passwords are placeholders (REPLACE-ME-...): replace them in {out}/"
            "nats-auth-secret.yaml and fleetbus-credentials.yaml before applying"
        )
    else:
        err_console.print(
            f"[yellow]{out} holds real passwords[/]: keep nats-auth-secret.yaml and"
            " fleetbus-credentials.yaml out of git"
        )
    console.print(f"next: follow {out / 'README.md'}")


@deploy_app.command("compose")
def compose(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write.")] = Path("compose"),
    image: Annotated[str, typer.Option(help="nats-server image.")] = NATS_IMAGE,
    fleetbus_image: Annotated[
        str, typer.Option(help="Image with fleetbus and your agents' code.")
    ] = FLEETBUS_IMAGE,
    replicas: Annotated[int, typer.Option(min=1, help="NATS nodes in the cluster.")] = 3,
    agent_module: Annotated[
        str, typer.Option(help="`fleetbus run` target per role; {role} is replaced.")
    ] = "your_agents.{role}:agent",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="First node's client port on 127.0.0.1.")
    ] = 4222,
    with_secrets: Annotated[
        Path | None,
        typer.Option(
            "--with-secrets",
            metavar="DATA_DIR",
            help="Use the real users and passwords `fleetbus up` wrote in DATA_DIR/auth/.",
        ),
    ] = None,
    generate_passwords: Annotated[
        bool, typer.Option("--generate-passwords", help="Random passwords, not placeholders.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """A compose project: a NATS JetStream cluster with the fleet's authorization, a one-shot
    provisioning service and one `fleetbus run` service per role, each with its own
    credentials; the steps in README.md."""
    from fleetbus.deploy.compose import ComposeOptions, render_compose

    if with_secrets is not None and generate_passwords:
        fail("use --with-secrets or --generate-passwords, not both")
    spec = guard(state(ctx).fleet)
    source: PasswordSource = "placeholder"
    credentials: dict[str, Credential] | None = None
    if with_secrets is not None:
        source, credentials = "data-dir", guard(lambda: _read_credentials(spec, with_secrets))
    elif generate_passwords:
        source, credentials = "generated", _generated_credentials(spec)
    options = ComposeOptions(
        nats_image=image,
        fleetbus_image=fleetbus_image,
        replicas=replicas,
        agent_module=agent_module,
        host_port=port,
        password_source=source,
        route_password=_route_password(with_secrets, generate_passwords),
    )
    files = guard(lambda: render_compose(spec, options, credentials=credentials))
    _write_files(out, files, force=force)
    console.print(
        f"wrote {len(files)} files to {out}: NATS x{replicas}, provisioning,"
        f" {len(spec.roles)} agent services"
    )
    if source == "placeholder":
        console.print(
            "passwords are placeholders (REPLACE-ME-...): fine to try it out; render again with"
            " --generate-passwords for anything else"
        )
    else:
        err_console.print(f"[yellow]{out}/credentials holds real passwords[/]: keep it out of git")
    console.print(f"next: cd {out} && docker compose up -d  (see README.md)")


@deploy_app.command("prometheus-rules")
def prometheus_rules(
    ctx: typer.Context,
    out: OutFile = None,
    stale_after: Annotated[
        float,
        typer.Option(min=1, help="Seconds without a fresh reading before the exporter is stale."),
    ] = DEFAULT_STALE_AFTER,
) -> None:
    """Print Prometheus alert rules for `fleetbus metrics`: the alerts of `fleetbus status`,
    with the fleet file's thresholds."""
    spec = guard(state(ctx).fleet)
    print_or_write(
        render_rules(spec, stale_after=stale_after), out, f"alert rules of fleet {spec.prefix}"
    )


@deploy_app.command("grafana")
def grafana(
    ctx: typer.Context,
    out: OutFile = None,
) -> None:
    """Print a Grafana dashboard (JSON) of the fleet: message rates, consumers' backlog, dead
    letters, live agents, storage against limits, and the agents' own metrics."""
    spec = guard(state(ctx).fleet)
    print_or_write(render_dashboard(spec), out, f"Grafana dashboard of fleet {spec.prefix}")

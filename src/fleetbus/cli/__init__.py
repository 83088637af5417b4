"""The ``fleetbus`` command: thin fronts over the library. Parse, call, print; no logic."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetbus.cli import (
    agent_cmds,
    asyncapi_cmds,
    deploy_cmds,
    dlq_cmds,
    fleet_cmds,
    mcp_cmds,
    message_cmds,
    metrics_cmds,
    provision_cmds,
    run_cmds,
    security_cmds,
    server_cmds,
    status_cmds,
    task_cmds,
)
from fleetbus.cli._common import CliState

__all__ = ["app", "main"]

app = typer.Typer(
    name="fleetbus",
    help="The messaging backbone for fleets of AI agents, on NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _options(
    ctx: typer.Context,
    fleet: Annotated[
        str | None,
        typer.Option(
            "--fleet", "-f", envvar="FLEETBUS_FLEET", help="Fleet file (default ./fleet.yaml)."
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            "-s",
            envvar="FLEETBUS_URL",
            help="NATS URL(s), comma-separated (default: the embedded server).",
        ),
    ] = None,
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir", envvar="FLEETBUS_DATA_DIR", help="Embedded server data (.fleetbus)."
        ),
    ] = None,
    user: Annotated[str | None, typer.Option(envvar="FLEETBUS_USER", help="NATS user.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="FLEETBUS_PASSWORD", help="NATS password.")
    ] = None,
    creds: Annotated[
        str | None, typer.Option(envvar="FLEETBUS_CREDS", help="NATS credentials file.")
    ] = None,
    tls_ca: Annotated[
        str | None,
        typer.Option("--tls-ca", envvar="FLEETBUS_TLS_CA", help="CA certificate to trust."),
    ] = None,
    tls_cert: Annotated[
        str | None,
        typer.Option("--tls-cert", envvar="FLEETBUS_TLS_CERT", help="Client certificate."),
    ] = None,
    tls_key: Annotated[
        str | None,
        typer.Option("--tls-key", envvar="FLEETBUS_TLS_KEY", help="Client certificate's key."),
    ] = None,
) -> None:
    ctx.obj = CliState(
        fleet_file=fleet,
        server_url=server,
        data_dir=data_dir,
        user=user,
        password=password,
        creds=creds,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )


fleet_cmds.register(app)
server_cmds.register(app)
provision_cmds.register(app)
message_cmds.register(app)
task_cmds.register(app)
agent_cmds.register(app)
dlq_cmds.register(app)
run_cmds.register(app)
status_cmds.register(app)
metrics_cmds.register(app)
security_cmds.register(app)
deploy_cmds.register(app)
asyncapi_cmds.register(app)
mcp_cmds.register(app)


def main() -> None:
    app()

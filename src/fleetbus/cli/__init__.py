"""The ``fleetbus`` command: thin fronts over the library. Parse, call, print; no logic."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fleetbus._version import __version__
from fleetbus.cli import (
    agent_cmds,
    asyncapi_cmds,
    dashboard_cmds,
    deploy_cmds,
    dlq_cmds,
    docs_cmds,
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
from fleetbus.cli._common import CliState, print_error
from fleetbus.fleet.model import data_dir_of_its_own

__all__ = ["app", "main"]


def _tidy_help() -> None:
    """Help and usage errors that read like the rest of fleetbus: a flag shows no ``<bool>``
    type, and a usage error is one ``error:`` line (not a box), exit status 2."""
    from typer import rich_utils
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    def format_error(error: Any) -> None:
        ctx = getattr(error, "ctx", None)
        where = f" (`{ctx.command_path} --help` shows the usage)" if ctx is not None else ""
        print_error(f"{error.format_message()}{where}")

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    rich_utils.rich_format_error = format_error  # type: ignore[assignment]


_tidy_help()

app = typer.Typer(
    name="fleetbus",
    help="The messaging backbone for fleets of AI agents, on NATS JetStream.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"fleetbus {__version__}")
        raise typer.Exit()


def _data_dir(value: str | None) -> str | None:
    """``--data-dir``: empty is not given (the fleet file's), ``.`` is refused as in the file."""
    try:
        return data_dir_of_its_own(value) if value else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
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
            "--data-dir",
            envvar="FLEETBUS_DATA_DIR",
            callback=_data_dir,
            help="Embedded server data (.fleetbus).",
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
docs_cmds.register(app)
dlq_cmds.register(app)
run_cmds.register(app)
status_cmds.register(app)
metrics_cmds.register(app)
security_cmds.register(app)
deploy_cmds.register(app)
asyncapi_cmds.register(app)
mcp_cmds.register(app)
dashboard_cmds.register(app)


def main() -> None:
    app()

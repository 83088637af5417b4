"""``fleetbus creds``: how a role (or the admin) logs in to the embedded server, printed or
saved as a ``nats`` CLI context."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetbus.cli._common import console, fail, guard, print_json, state
from fleetbus.server.embedded import running_embedded

if TYPE_CHECKING:
    from fleetbus.fleet import FleetSpec
    from fleetbus.security.credentials import Credential


def register(app: typer.Typer) -> None:
    app.command("creds")(creds)


def creds(
    ctx: typer.Context,
    identity: Annotated[str, typer.Argument(metavar="ROLE", help="A role, or admin.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    nats_context: Annotated[
        bool,
        typer.Option(
            "--nats-context",
            help="Save it as a nats CLI context (0600): `nats --context ROLE stream ls`.",
        ),
    ] = False,
    context_name: Annotated[
        str | None,
        typer.Option(help="The context's name (default: ROLE).", show_default=False),
    ] = None,
) -> None:
    """Print how ROLE connects to the embedded server: URL, user, password, inbox prefix; or
    save it as a nats CLI context with --nats-context.

    The password is a secret: this is the only command that shows it."""
    from fleetbus.security import ADMIN, auth_dir, load_credential

    if context_name is not None and not nats_context:
        fail("--context-name names the context --nats-context writes; give both")
    st = state(ctx)
    spec = guard(st.fleet)
    if identity != ADMIN:
        guard(lambda: spec.role(identity))
    data = st.data_path()
    cred = guard(lambda: load_credential(data, identity))
    if cred is None:
        fail(
            f"no credentials for {identity} in {auth_dir(data)}/: auth is off, or"
            " `fleetbus up` has not run with this fleet file"
        )
    info = running_embedded(data)
    url = info.url if info is not None else f"nats://{spec.server.host}:{spec.server.port}"
    path = auth_dir(data) / f"{identity}.json"
    if nats_context:
        _save_context(spec, identity, cred, url, data, context_name or identity)
        return
    if cred.nkey_seed_file:
        if json_out:
            print_json(
                {
                    "identity": identity,
                    "servers": url.split(","),
                    "nkey": cred.nkey,
                    "nkey_seed_file": cred.nkey_seed_file,
                    "inbox_prefix": cred.inbox_prefix,
                }
            )
            return
        console.print(f"servers:       {url}")
        console.print(f"nkey:          {cred.nkey}")
        console.print(f"seed file:     {cred.nkey_seed_file} (0600)")
        console.print(f"inbox prefix:  {cred.inbox_prefix}")
        console.print(
            f"nats CLI:      nats --server {url} --nkey {cred.nkey_seed_file}"
            f" --inbox-prefix {cred.inbox_prefix} ..."
        )
        return
    if json_out:
        print_json(
            {
                "identity": identity,
                "servers": url.split(","),
                "user": cred.user,
                "password": cred.password,
                "inbox_prefix": cred.inbox_prefix,
                "file": str(path),
            }
        )
        return
    console.print(f"servers:       {url}")
    console.print(f"user:          {cred.user}")
    console.print(f"password:      {cred.password}", soft_wrap=True)
    console.print(f"inbox prefix:  {cred.inbox_prefix}")
    console.print(f"stored in:     {path} (0600)")
    console.print(
        f"nats CLI:      nats --server {url} --user {cred.user} --password '<password>'"
        f" --inbox-prefix {cred.inbox_prefix} ..."
    )


def _save_context(
    spec: FleetSpec, identity: str, cred: Credential, url: str, data: Path, name: str
) -> None:
    from fleetbus.security.natscontext import context_settings, write_context
    from fleetbus.security.tls import tls_files

    # The nats CLI's own rule: $XDG_CONFIG_HOME, else ~/.config.
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    local_tls = tls_files(data)
    ca = local_tls.ca if local_tls is not None and url.startswith("tls://") else None
    settings = context_settings(
        cred,
        url,
        ca=ca,
        description=f"fleetbus {identity} ({'admin' if cred.role is None else 'role'})",
    )
    path = guard(lambda: write_context(config_home, name, settings))
    console.print(f"wrote {path} (0600): the nats CLI logs in as {identity}", soft_wrap=True)
    console.print(f"try:           nats --context {name} {_example(spec, cred)}")


def _example(spec: FleetSpec, cred: Credential) -> str:
    """A nats CLI command the identity may run: the admin anything, a role its consumers."""
    consumers = [c for c in spec.consumers() if c.role == cred.role]
    if cred.role is None or not consumers:
        return "stream ls"
    return f"consumer info {consumers[0].stream} {consumers[0].name}"

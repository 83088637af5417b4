"""``fleetbus creds``: how a role (or the admin) logs in to the embedded server."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetbus.cli._common import console, fail, guard, print_json, state
from fleetbus.server.embedded import running_embedded


def register(app: typer.Typer) -> None:
    app.command("creds")(creds)


def creds(
    ctx: typer.Context,
    identity: Annotated[str, typer.Argument(metavar="ROLE", help="A role, or admin.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print how ROLE connects to the embedded server: URL, user, password, inbox prefix.

    The password is a secret: this is the only command that shows it."""
    from fleetbus.security import ADMIN, auth_dir, load_credential

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

"""``fleetbus up`` and ``fleetbus down``: the embedded backbone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from fleetbus._files import write_private
from fleetbus.cli._common import console as out_console
from fleetbus.cli._common import err_console, fail, guard, print_json, run_async, state
from fleetbus.deadletters import AdvisoryCopier
from fleetbus.environment import embedded_login
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.js.publish import Publisher
from fleetbus.natsconf import jetstream_account
from fleetbus.provision import provision_at, refusal
from fleetbus.provision.report import plan_json, print_plan
from fleetbus.server.cluster import LocalCluster
from fleetbus.server.embedded import (
    EmbeddedServer,
    running_embedded,
    start_embedded,
    start_embedded_cluster,
    stop_embedded,
)
from fleetbus.server.process import CONFIG_FILE, keep_detached


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("copier", hidden=True)(copier)


def up(
    ctx: typer.Context,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; `fleetbus down` stops.")
    ] = False,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="No authentication: any client may do anything (the default gives each"
            " role its own credentials: `fleetbus docs security`).",
        ),
    ] = False,
    nkeys: Annotated[
        bool,
        typer.Option(
            "--nkeys",
            help="Authenticate each identity by NKey (seed in the data dir), not password.",
        ),
    ] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Require TLS, with a local CA made in the data dir (tls/ca.pem for clients).",
        ),
    ] = False,
    no_provision: Annotated[
        bool, typer.Option("--no-provision", help="Start the server only.")
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Client port (default server.port; 0: a free one)."
        ),
    ] = None,
    monitor_port: Annotated[
        int | None,
        typer.Option(
            "--monitor-port",
            min=0,
            max=65535,
            help="Turn the HTTP monitoring port on (0: a free one). Off by default: it"
            " answers anyone on this machine and lists every connection and subscription.",
        ),
    ] = None,
    cluster: Annotated[
        int | None,
        typer.Option(
            "--cluster",
            min=1,
            max=9,
            help="Run N routed nodes on loopback (default server.cluster.size); ports count"
            " up from server.port, monitor_port and cluster.port.",
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="With --detach: the server, its pids and the plan as JSON."),
    ] = False,
) -> None:
    """Start the embedded nats-server (JetStream on) and provision the fleet."""
    st = state(ctx)
    spec = guard(st.fleet)
    console = err_console if json_out else out_console  # stdout is the JSON's
    if st.fleet_path is None:
        console.print(
            "[dim]no fleet.yaml here: serving the built-in seed fleet (`fleetbus init` writes"
            " it to fleet.yaml, to edit)[/]",
            soft_wrap=True,
        )
    data_dir = st.data_path()
    problem = None if no_provision else refusal(spec)
    if problem is not None:  # before a server is started that it would leave running
        fail(str(problem))
    ports = {"port": port, "monitor_port": monitor_port}
    server_spec = spec.server.model_copy(
        update={key: value for key, value in ports.items() if value is not None}
    )

    def warn(message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {message}")

    size = cluster if cluster is not None else spec.server.cluster.size
    auth = "" if no_auth else guard(lambda: _authorization(spec, data_dir, nkeys=nkeys))
    route_tls = ""
    if tls:
        from fleetbus.security.tls import ensure_local_ca, render_tls

        files = guard(lambda: ensure_local_ca(data_dir, spec.server.host))
        auth += render_tls(files)
        route_tls = render_tls(files, verify=True, indent="  ")
    if server_spec.monitor_port is not None:
        warn(
            f"the HTTP monitoring port {server_spec.monitor_port or '(a free one)'} is on: it"
            " answers anyone on this machine and lists every connection and subscription,"
            " reply subjects included"
        )
    server: EmbeddedServer | LocalCluster
    if size > 1:
        from fleetbus.security.credentials import ensure_route_credential

        route_auth = None if no_auth else guard(lambda: ensure_route_credential(data_dir))
        server = guard(
            lambda: start_embedded_cluster(
                server_spec,
                data_dir,
                size,
                detach=detach,
                on_warning=warn,
                extra_config=auth,
                tls=tls,
                route_auth=route_auth,
                route_tls=route_tls,
            )
        )
        console.print(f"{size}-node cluster {server.url}, data in {data_dir}/n1..n{size}/")
    else:
        server = guard(
            lambda: start_embedded(
                server_spec, data_dir, detach=detach, on_warning=warn, extra_config=auth, tls=tls
            )
        )
        monitor = f" (monitor {server.monitor_url})" if server.monitor_url else ""
        console.print(f"nats-server {server.url}{monitor}, data in {data_dir}/")
    url = server.url.replace("nats://", "tls://") if tls else server.url
    if tls:
        console.print(f"TLS required: clients trust {data_dir}/tls/ca.pem ({url})")
    result = None
    try:
        if not no_provision:
            result = run_async(lambda: provision_at(_admin(url, data_dir), spec))
            print_plan(console, result, dry_run=False)
    except (typer.Exit, KeyboardInterrupt):
        if not detach:
            server.stop()
        else:
            err_console.print(
                "the server is still running (`fleetbus down` stops it); once the fleet"
                " file is fixed, `fleetbus provision` provisions it",
                soft_wrap=True,
            )
        raise
    if detach:
        pids = [n.pid for n in server.nodes] if isinstance(server, LocalCluster) else [server.pid]
        shown = ", ".join(str(p) for p in pids)
        copier_pid = None
        if spec.dead_letter_stream:
            copier_pid = _start_copier(st.fleet_path, data_dir)
            shown += f"; dead-letter copier {copier_pid}"
        console.print(f"running in the background (pid {shown}); `fleetbus down` stops it")
        if json_out:
            print_json(
                {
                    "url": url,
                    "data_dir": str(data_dir),
                    "pids": pids,
                    "copier_pid": copier_pid,
                    "plan": plan_json(result) if result is not None else None,
                }
            )
        return
    try:
        asyncio.run(_serve(_admin(url, data_dir), spec))
    finally:
        server.stop()
        console.print("stopped")


def down(
    ctx: typer.Context,
    grace: Annotated[float, typer.Option(min=0, help="Seconds to wait before SIGKILL.")] = 10.0,
    json_out: Annotated[bool, typer.Option("--json", help="What was stopped, as JSON.")] = False,
) -> None:
    """Stop the embedded server that `fleetbus up --detach` started."""
    st = state(ctx)
    _stop_copier(st.data_path())
    info = guard(lambda: stop_embedded(st.data_path(), grace))
    pids = list(info.pids or (info.pid,))
    if json_out:
        print_json({"stopped": pids, "url": info.url})
    else:
        out_console.print(f"stopped nats-server pid {', '.join(map(str, pids))} ({info.url})")


_BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")


_AUTH_BLOCK = re.compile(r"^(?:authorization|accounts) \{\n.*?^\}\n", re.MULTILINE | re.DOTALL)
"""The server's own authorization block in a config ``up`` wrote (a route's is indented)."""


def reload_permissions(spec: FleetSpec, data_dir: Path) -> bool:
    """Give the embedded server running from ``data_dir`` (auth on) the identities and
    permissions ``spec`` gives, when they differ from what it holds: nats-server reads them
    from its config at start, and provisioning changes streams and consumers only. Writes
    its config again and has it reload (SIGHUP, each node of a local cluster); creates the
    credentials of roles the file adds, as ``up`` would. Whether it reloaded."""
    info = running_embedded(data_dir)
    if info is None:
        return False
    configs = [data_dir / CONFIG_FILE, *sorted(data_dir.glob(f"n*/{CONFIG_FILE}"))]
    texts = {c: c.read_text() for c in configs if c.is_file()}
    if not texts or not all(_AUTH_BLOCK.search(t) for t in texts.values()):
        return False  # auth off: nothing to hold anyone to
    nkeys = "nkey:" in next(iter(texts.values()))
    block = _authorization(spec, data_dir, nkeys=nkeys)
    if any(jetstream_account(t) != jetstream_account(block) for t in texts.values()):
        # Its streams are in the global account: reloading would move every identity away
        # from them. A restart moves the streams first (fleetbus.server.store).
        raise FleetbusError(
            "the running server keeps its streams in the account every identity is in, as"
            " fleetbus did before the streams got an account of their own; its permissions"
            " are not reloaded: restart it (`fleetbus down`, then `fleetbus up`) to move them"
        )
    held = _BCRYPT.sub("", block)  # hashes are salted anew each time: compare without them
    stale = {c: t for c, t in texts.items() if held not in _BCRYPT.sub("", t)}
    if not stale:
        return False
    for path, text in stale.items():
        write_private(path, _AUTH_BLOCK.sub(lambda _: block, text, count=1))
    for pid in info.pids or (info.pid,):
        os.kill(pid, signal.SIGHUP)  # nats-server reloads its config
    return True


def _authorization(spec: FleetSpec, data_dir: Path, *, nkeys: bool = False) -> str:
    """Each role's and the admin's credentials (created once, 0600) as a config block."""
    from fleetbus.security import ensure_credentials, render_authorization

    return render_authorization(spec, ensure_credentials(data_dir, spec, nkeys=nkeys))


def _admin(url: str, data_dir: Path) -> ConnectSettings:
    """The admin's settings when auth is on (its file exists), else anonymous ones; with
    the local CA when the server runs TLS."""
    return ConnectSettings.from_url(url, name="fleetbus-up", **embedded_login(data_dir, url))


def copier(ctx: typer.Context) -> None:
    """Run the dead-letter copier as the admin until SIGTERM (`up --detach` starts one)."""
    st = state(ctx)
    spec = guard(st.fleet)
    settings = st.connect_settings(name="fleetbus-copier")
    asyncio.run(_serve(settings, spec, announce=False, server_dir=st.data_path()))


_COPIER_PID = "copier.pid"


def _start_copier(fleet_path: Path | None, data_dir: Path) -> int:
    """A detached ``fleetbus copier`` beside the detached server: with auth on, no agent may
    read the originals a dead letter needs, so the admin identity copies them."""
    argv = [sys.executable, "-m", "fleetbus", "--data-dir", str(data_dir.absolute())]
    if fleet_path is not None:
        argv += ["--fleet", str(fleet_path.absolute())]
    argv.append("copier")
    env = {k: v for k, v in os.environ.items() if k not in ("FLEETBUS_URL", "FLEETBUS_USER")}
    fd = os.open(data_dir / "copier.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )  # fmt: skip
    write_private(data_dir / _COPIER_PID, f"{proc.pid}\n")
    keep_detached(proc)
    return proc.pid


def _stop_copier(data_dir: Path) -> None:
    record = data_dir / _COPIER_PID
    try:
        pid = int(record.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path("/proc").exists() else b""
        args = cmdline.split(b"\0")
        # The copier `up` started for this data dir, not whatever process has the pid now
        # (a pid is reused: an agent of `fleetbus run`, say, would have been stopped).
        ours = b"copier" in args and str(data_dir.absolute()).encode() in args
        if not cmdline or ours:
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(OSError):
        record.unlink()


async def _serve(
    settings: ConnectSettings,
    spec: FleetSpec,
    *,
    announce: bool = True,
    server_dir: Path | None = None,
) -> None:
    """Run the dead-letter copier until SIGINT/SIGTERM (or, with ``server_dir``, until the
    embedded server recorded there is gone: a detached copier never outlives its server)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    watchdog = asyncio.create_task(_watch_server(server_dir, stopping)) if server_dir else None
    # Only now does Ctrl-C mean "stop cleanly" rather than KeyboardInterrupt.
    if announce:
        out_console.print("serving; Ctrl-C stops the server")
    conn = await connect(settings)
    try:
        if spec.dead_letter_stream:
            copier = AdvisoryCopier(conn, spec, Publisher(conn, sender="fleetbus"))
            await copier.run(stopping)
        await stopping.wait()
    except FleetbusError as exc:
        fail(str(exc))
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await conn.close()


async def _watch_server(server_dir: Path, stopping: asyncio.Event) -> None:
    """Set ``stopping`` once the embedded server in ``server_dir`` is gone. Another process's
    lifetime sends no event here: look once a second."""
    while running_embedded(server_dir) is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await stopping.wait()
                return
    stopping.set()

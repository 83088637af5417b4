"""A fleet per test: the same topology under a unique prefix and unique stream names, so
tests share one server and never see each other's messages."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetbus.client import Fleet
    from fleetbus.fleet import FleetSpec
    from fleetbus.js.connection import ConnectSettings
    from fleetbus.runtime import Agent, RuntimeSettings
    from fleetbus.wire.updates import TaskUpdate

__all__ = ["FleetUnderTest", "final_history", "isolate", "provision_fleet"]


def isolate(spec: FleetSpec, tag: str | None = None) -> FleetSpec:
    """``spec`` with prefix ``t{tag}`` and every stream renamed ``{NAME}_{tag}``."""
    tag = tag or uuid.uuid4().hex[:8]
    streams = {f"{name}_{tag}": stream for name, stream in spec.streams.items()}
    return spec.model_copy(update={"prefix": f"t{tag}", "streams": streams})


async def provision_fleet(url: str, spec: FleetSpec) -> None:
    from fleetbus.js.connection import ConnectSettings
    from fleetbus.provision import provision_at

    await provision_at(ConnectSettings.from_url(url, name="fleetbus-test"), spec)


@dataclass(frozen=True)
class FleetUnderTest:
    """A provisioned fleet on the test server, and quick ways to run its parts."""

    spec: FleetSpec
    url: str

    @property
    def connection(self) -> ConnectSettings:
        from fleetbus.js.connection import ConnectSettings

        return ConnectSettings.from_url(self.url, name="fleetbus-test")

    def runtime_settings(self, **overrides: Any) -> RuntimeSettings:
        """Settings for tests: short polls, short retries, short grace."""
        from fleetbus.runtime import RuntimeSettings

        base = RuntimeSettings(poll=2.0, grace=5.0, retry_base=0.05, retry_max=0.5)
        return replace(base, **overrides)

    def agent(self, role: str, *, metrics_port: int | None = None, **overrides: Any) -> Agent:
        """An agent of ``role`` on this fleet; ``overrides``: ``RuntimeSettings`` fields."""
        from fleetbus.runtime import Agent

        return Agent(
            role,
            spec=self.spec,
            connection=self.connection,
            settings=self.runtime_settings(**overrides),
            metrics_port=metrics_port,
        )

    @contextlib.asynccontextmanager
    async def client(self, sender: str | None = None) -> AsyncIterator[Fleet]:
        from fleetbus.client import Fleet

        async with Fleet.connect(spec=self.spec, connection=self.connection, sender=sender) as f:
            yield f


def make(url: str, spec: FleetSpec) -> FleetUnderTest:
    """Isolate ``spec``, provision it on ``url``, and return it.

    Callable from sync code and from inside a running event loop (an async test calling
    the ``make_fleet`` fixture): there the provisioning runs on a loop in a worker thread.
    """
    isolated = isolate(spec)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(provision_fleet(url, isolated))
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, provision_fleet(url, isolated)).result()
    return FleetUnderTest(isolated, url)


async def final_history(
    client: Fleet,
    task_id: str,
    *,
    until: str | None = None,
    timeout: float = 10.0,
    role: str | None = None,
) -> list[TaskUpdate]:
    """Every stored update of ``task_id`` up to its first terminal one (completed /
    dead-lettered), or up to the first in state ``until`` (a replayed task's ``completed``).

    ``TaskHandle.result()`` answers from the live update, which can reach a subscriber a moment
    before the stream has stored it; a test that then reads the history wants this. ``role``:
    only what that role wrote (a role's client needs it, and then sees the last stored state
    and what follows; the admin's sees every update)."""
    out: list[TaskUpdate] = []
    async with asyncio.timeout(timeout):
        async for update in client.watch(task_id, role=role):
            out.append(update)
            if update.state == until or (until is None and update.terminal):
                return out
    return out  # pragma: no cover - watch only ends by the timeout

"""An assigner whose connection drops while its task ends: the outcome and the server's notice
were published while it could not hear them, and ``result()`` still returns once it is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

import fleetbus.client.handle as handle_module
from fleetbus import Agent, Task
from fleetbus.client.handle import TaskHandle
from fleetbus.tasks.records import TaskKind
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest


class Relay:
    """A TCP relay to the test server whose connections can be cut, and new ones refused,
    while the server runs on: one client's view of a network break."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 4222
        self.refusing = False
        self._open: list[asyncio.StreamWriter] = []
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._open += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones until ``mend``."""
        self.refusing = True
        for writer in self._open:
            writer.close()
        self._open.clear()

    def mend(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()


@contextlib.asynccontextmanager
async def cut_off_while(
    fleet: FleetUnderTest,
    backend: Agent,
    started: asyncio.Event,
    go_on: asyncio.Event,
    *,
    stored: tuple[TaskKind, str],
) -> AsyncIterator[TaskHandle]:
    """A task assigned through a relay; once its handler has ``started`` the relay cuts the
    assigner off, the handler goes on, and the relay mends once the task's last ``stored``
    record (kind, state) is in the stream: the handle is then back, having heard none of it.
    The stored records are also read every LIVE_CHECK: the caller makes that longer than the
    test, so only what the reconnect does can answer."""
    kind, state = stored
    relay = Relay(fleet.url)
    far = replace(fleet, url=await relay.start())
    try:
        async with backend, far.client(sender="cto") as cto, fleet.client(sender="cto") as near:
            handle = await cto.assign("backend", {"title": "while cut off"})
            await asyncio.wait_for(started.wait(), 15)
            relay.cut()
            await eventually(lambda: not cto.conn.is_connected, 15, "the relayed link to drop")
            go_on.set()

            async def in_stream() -> bool:
                last = await near.records.last(handle.ref, kind)
                return last is not None and last.state == state

            await eventually(in_stream, 15, f"a {state} {kind} record to be stored")
            relay.mend()
            yield handle
    finally:
        await relay.close()


async def test_an_outcome_stored_while_the_assigner_was_cut_off_is_read_on_reconnect(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handle_module, "LIVE_CHECK", 120.0)
    holding, release = asyncio.Event(), asyncio.Event()
    backend = fleet.agent("backend")

    @backend.on_task
    async def work(task: Task) -> str:
        holding.set()
        await release.wait()
        return "done"

    async with cut_off_while(
        fleet, backend, holding, release, stored=("outcome", "completed")
    ) as handle:
        assert await handle.result(timeout=15) == "done"


async def test_an_input_request_made_while_the_assigner_was_cut_off_reaches_updates(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler waits for an answer, so the task has no outcome to read: without the
    # reconnect reading the last stored update, updates() would wait for ever.
    monkeypatch.setattr(handle_module, "LIVE_CHECK", 120.0)
    started, ask = asyncio.Event(), asyncio.Event()
    backend = fleet.agent("backend")

    @backend.on_task
    async def work(task: Task) -> str:
        started.set()
        await ask.wait()
        choice = await task.request_input({"question": "cursor or offset?"}, timeout=30)
        return f"chose {choice['choice']}"

    async with cut_off_while(
        fleet, backend, started, ask, stored=("updates", "input-required")
    ) as handle:
        async with asyncio.timeout(15):
            async for update in handle.updates():
                if update.state == "input-required":
                    assert update.data == {"question": "cursor or offset?"}
                    await handle.respond({"choice": "cursor"})
                if update.terminal:
                    break
        assert await handle.result(timeout=15) == "chose cursor"

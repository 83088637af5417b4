"""Agent processes serve on uvloop when it is installed (the ``speed`` extra), unless
``FLEETBUS_LOOP=asyncio`` says otherwise."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from fleetbus.runtime.eventloop import loop_factory, loop_name, serve


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_serves_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETBUS_LOOP", raising=False)
    assert loop_factory() is uvloop.new_event_loop
    assert loop_name() == "uvloop"
    assert serve(_loop_module()).startswith("uvloop")


def test_fleetbus_loop_asyncio_keeps_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETBUS_LOOP", "asyncio")
    assert loop_factory() is None
    assert loop_name() == "asyncio"
    assert serve(_loop_module()).startswith("asyncio")

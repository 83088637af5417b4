"""A thin, typed door to the JetStream API (``$JS.API.*``): JSON in, JSON out, errors raised.

fleetbus speaks the API's JSON directly where it manages configuration, so what it compares
and writes is exactly what the server stores (nats-py's dataclasses drop fields they do not
know and round durations through floats).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.connection import denied
from fleetbus.errors import FleetbusError, JetStreamError, PermissionDenied

__all__ = ["JsApi"]

_PAGE = 256


class JsApi:
    def __init__(self, nc: Client, *, prefix: str = "$JS.API", timeout: float = 5.0) -> None:
        self.nc = nc
        self.prefix = prefix
        self.timeout = timeout

    async def request(
        self, api: str, payload: dict[str, Any] | None = None, *, ride_out: float = 0.0
    ) -> dict[str, Any]:
        """One API call. ``ride_out`` seconds: keep retrying a read through timeouts and
        503s, the way a leader election in a cluster looks from here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ride_out
        wait = 0.1
        while True:
            try:
                return await self._request(api, payload)
            except (JetStreamError, FleetbusError) as exc:
                transient = not isinstance(exc, JetStreamError) or exc.code == 503
                if not transient or loop.time() + wait > deadline:
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)

    async def _request(self, api: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        subject = f"{self.prefix}.{api}"
        data = json.dumps(payload).encode() if payload is not None else b""
        try:
            msg = await self.nc.request(subject, data, timeout=self.timeout)
        except NoRespondersError:
            raise FleetbusError(
                "JetStream is not enabled on this server (no responder for the JetStream API)"
            ) from None
        except NatsTimeoutError:
            if denied(self.nc, subject):
                raise PermissionDenied(
                    f"this identity may not use {subject} (the server refused it)"
                ) from None
            raise FleetbusError(
                f"the JetStream API did not answer {api} within {self.timeout:g}s"
                " (a leader election, or no permission for this identity)"
            ) from None
        reply: dict[str, Any] = json.loads(msg.data)
        error = reply.get("error")
        if error:
            raise JetStreamError(
                subject,
                int(error.get("code", 0)),
                int(error.get("err_code", 0)),
                str(error.get("description", "unknown error")),
            )
        return reply

    async def stream_names(self) -> list[str]:
        names: list[str] = []
        while True:
            reply = await self.request("STREAM.NAMES", {"offset": len(names)})
            page = reply.get("streams") or []
            names.extend(page)
            if not page or len(names) >= int(reply.get("total", 0)):
                return names

    async def stream_info(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.request(f"STREAM.INFO.{name}")
        except JetStreamError as exc:
            if exc.err_code == 10059:  # stream not found
                return None
            raise

    async def consumers(self, stream: str) -> list[dict[str, Any]]:
        """Every consumer's info on ``stream`` (paged)."""
        out: list[dict[str, Any]] = []
        while True:
            reply = await self.request(f"CONSUMER.LIST.{stream}", {"offset": len(out)})
            page = reply.get("consumers") or []
            out.extend(page)
            if not page or len(out) >= int(reply.get("total", 0)):
                return out

    async def consumer_info(
        self, stream: str, name: str, *, ride_out: float = 0.0
    ) -> dict[str, Any] | None:
        try:
            return await self.request(f"CONSUMER.INFO.{stream}.{name}", ride_out=ride_out)
        except JetStreamError as exc:
            if exc.err_code == 10014:  # consumer not found
                return None
            raise

    async def create_stream(self, config: dict[str, Any]) -> dict[str, Any]:
        return await self.request(f"STREAM.CREATE.{config['name']}", config)

    async def update_stream(self, config: dict[str, Any]) -> dict[str, Any]:
        return await self.request(f"STREAM.UPDATE.{config['name']}", config)

    async def delete_stream(self, name: str) -> None:
        await self.request(f"STREAM.DELETE.{name}")

    async def put_consumer(
        self, stream: str, config: dict[str, Any], *, action: str = ""
    ) -> dict[str, Any]:
        """Create or update a durable consumer; ``action`` is "create", "update" or ""."""
        payload: dict[str, Any] = {"stream_name": stream, "config": config}
        if action:
            payload["action"] = action
        return await self.request(f"CONSUMER.CREATE.{stream}.{config['durable_name']}", payload)

    async def delete_consumer(self, stream: str, name: str) -> None:
        await self.request(f"CONSUMER.DELETE.{stream}.{name}")

    async def get_message(self, stream: str, seq: int) -> dict[str, Any] | None:
        """The stored message at ``seq`` (subject, base64 data and hdrs), or None if gone."""
        try:
            reply = await self.request(f"STREAM.MSG.GET.{stream}", {"seq": seq})
        except JetStreamError as exc:
            if exc.err_code == 10037:  # no message found
                return None
            raise
        message: dict[str, Any] = reply["message"]
        return message

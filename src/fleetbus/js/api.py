"""A thin, typed door to the JetStream API (``$JS.API.*``): JSON in, JSON out, errors raised.

fleetbus speaks the API's JSON directly where it manages configuration, so what it compares
and writes is exactly what the server stores (nats-py's dataclasses drop fields they do not
know and round durations through floats).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.errors import FleetbusError, JetStreamError, JsErrorCode, PermissionDenied
from fleetbus.js.backoff import Backoff
from fleetbus.js.connection import Connection
from fleetbus.wire.headers import STORED_SUBJECT, parse_block

__all__ = ["JsApi", "NoAnswer", "StoredMessage"]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the stream stores it, read by sequence (``STREAM.MSG.GET``)."""

    subject: str
    seq: int
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    time: str = ""

    @classmethod
    def from_api(cls, message: dict[str, Any]) -> StoredMessage:
        hdrs = message.get("hdrs")
        return cls(
            subject=str(message.get("subject", "")),
            seq=int(message.get("seq", 0)),
            data=base64.b64decode(message.get("data") or b""),
            headers=parse_block(base64.b64decode(hdrs)) if hdrs else {},
            time=str(message.get("time", "")),
        )


class NoAnswer(FleetbusError):
    """The JetStream API did not answer in time (a leader election, a server going down)."""


class JsApi:
    def __init__(self, conn: Connection, *, prefix: str = "$JS.API", timeout: float = 5.0) -> None:
        self.conn = conn
        self.prefix = prefix
        self.timeout = timeout

    async def request(
        self, api: str, payload: dict[str, Any] | None = None, *, ride_out: float = 0.0
    ) -> dict[str, Any]:
        """One API call. ``ride_out`` seconds: keep retrying through silence and 503s, the
        way a leader election in a cluster looks from here. A refusal is never retried."""
        backoff = Backoff(0.1, 1.0, deadline=ride_out)
        while True:
            try:
                return await self._request(api, payload)
            except JetStreamError as exc:
                if exc.code != 503 or not await backoff.wait():
                    raise
            except NoAnswer:
                if not await backoff.wait():
                    raise

    async def _request(self, api: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        subject = f"{self.prefix}.{api}"
        data = json.dumps(payload).encode() if payload is not None else b""
        try:
            msg = await self.conn.nc.request(subject, data, timeout=self.timeout)
        except NoRespondersError:
            raise FleetbusError(
                "JetStream is not enabled on this server (no responder for the JetStream API)"
            ) from None
        except NatsTimeoutError:
            if self.conn.refused(subject):
                raise PermissionDenied(
                    f"this identity may not use {subject} (the server refused it)"
                ) from None
            raise NoAnswer(
                f"the JetStream API did not answer {api} within {self.timeout:g}s"
                " (a leader election, or no permission for this identity)"
            ) from None
        reply: dict[str, Any] = json.loads(msg.data)
        error = JetStreamError.from_reply(subject, reply)
        if error is not None:
            raise error
        return reply

    async def stream_names(self) -> list[str]:
        names: list[str] = []
        while True:
            reply = await self.request("STREAM.NAMES", {"offset": len(names)})
            page = reply.get("streams") or []
            names.extend(page)
            if not page or len(names) >= int(reply.get("total", 0)):
                return names

    async def stream_info(
        self, name: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        try:
            return await self.request(f"STREAM.INFO.{name}", payload)
        except JetStreamError as exc:
            if exc.err_code == JsErrorCode.STREAM_NOT_FOUND:
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
            if exc.err_code == JsErrorCode.CONSUMER_NOT_FOUND:
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

    async def get_message(self, stream: str, seq: int) -> StoredMessage | None:
        """The stored message at ``seq``, or None if it is gone (or never was)."""
        try:
            reply = await self.request(f"STREAM.MSG.GET.{stream}", {"seq": seq})
        except JetStreamError as exc:
            if exc.err_code == JsErrorCode.NO_MESSAGE_FOUND:
                return None
            raise
        return StoredMessage.from_api(reply["message"])

    async def last_for(self, stream: str, subject: str) -> StoredMessage | None:
        """The last message stored on ``subject`` (a literal, or a filter: the last of all it
        matches), by direct get: ``$JS.API.DIRECT.GET.{stream}.{subject}``.

        A permission on that subject is a permission to read exactly that (the server refuses
        a body that would select anything else), so roles read their tasks' records this way
        without the right to create consumers. Any replica answers (``allow_direct``)."""
        api = f"{self.prefix}.DIRECT.GET.{stream}.{subject}"
        try:
            msg = await self.conn.nc.request(api, b"", timeout=self.timeout)
        except NoRespondersError:
            raise FleetbusError(f"stream {stream} does not answer direct gets") from None
        except NatsTimeoutError:
            if self.conn.refused(api):
                raise PermissionDenied(f"this identity may not read {subject}") from None
            raise NoAnswer(
                f"no answer to a direct get on {stream} within {self.timeout:g}s"
            ) from None
        headers = dict(msg.headers or {})
        status = headers.get("Status")
        if status == "404":
            return None
        if status:
            raise FleetbusError(f"direct get of {subject} on {stream}: {status} {headers}")
        return StoredMessage(
            subject=headers.pop(STORED_SUBJECT, subject),
            seq=int(headers.pop("Nats-Sequence", "0") or 0),
            data=msg.data,
            time=headers.pop("Nats-Time-Stamp", ""),
            headers={k: v for k, v in headers.items() if k != "Nats-Stream"},
        )

    async def delete_message(self, stream: str, seq: int) -> None:
        await self.request(f"STREAM.MSG.DELETE.{stream}", {"seq": seq})

    async def purge(self, stream: str, *, filter_subject: str | None = None) -> int:
        payload = {"filter": filter_subject} if filter_subject else None
        reply = await self.request(f"STREAM.PURGE.{stream}", payload)
        return int(reply.get("purged", 0))

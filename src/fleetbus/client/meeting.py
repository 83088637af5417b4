"""Meetings: live, sub-second conversation between agents on ``P.meetings.{meeting_id}``.

Meeting traffic is core NATS — not stored, delivered in order to whoever is in the room. A
member says things on ``P.meetings.{meeting_id}.{role}``: with auth on the server lets each
role use only its own name there, so ``MeetingMessage.sender`` is who said it
(``sender_verified``); the seed's plain ``P.meetings.{meeting_id}`` is heard too, its ``from``
a claim.
Invitations go through the invitee's stored ``P.agents.{role}.meetings`` subject, so an agent
that is offline finds its invitation when it starts. Who is in the room is known from join,
leave and presence notices::

    async with fleet.meeting("api-design", as_role="cto") as room:
        await room.invite("backend", topic="pagination")
        await room.say("Cursor or offset pagination?", type="question")
        async for message in room:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetbus._background import background
from fleetbus._backlog import Backlog
from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.js._natspy import subscribe_direct
from fleetbus.js.connection import unsubscribe
from fleetbus.telemetry import tracing
from fleetbus.wire import headers as h
from fleetbus.wire.clock import now_iso
from fleetbus.wire.codec import decode, encode

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from fleetbus.client.fleet import Fleet
    from fleetbus.js.acks import PubAck
    from fleetbus.wire.subjects import Subjects

__all__ = ["Meeting", "MeetingMessage"]

log = logging.getLogger("fleetbus.meeting")

NOTICES = ("join", "leave", "present")
_BACKLOG = 10_000
_BACKLOG_BYTES = 16 * 1024 * 1024
"""What a room keeps for a reader that does not keep up, at most (the oldest go first): any
member may say lines of a megabyte. Counted on the wire for a line kept as it came, and
``_DECODED`` times that for a line kept parsed."""
_PARSED_AT_MOST = 4096
"""A line longer than this on the wire is kept as it came and parsed when it is read: parsed,
JSON takes up to twenty-some times its size (a list of empty objects)."""
_DECODED = 32
_JOIN_ANSWERED_EVERY = 1.0
"""A member's joins are answered (``present``) at most once a second: each answer is heard by
every member, so a member repeating ``join`` would make the room talk to itself."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingMessage:
    """One thing said in a meeting (or a join / leave / present notice)."""

    sender: str
    type: str
    content: Any
    body: Mapping[str, Any] = field(default_factory=dict)
    time: str = ""
    sender_verified: bool = False
    """True when ``sender`` is the subject's token (the server's word), not the body's."""

    @property
    def notice(self) -> bool:
        return self.type in NOTICES

    @classmethod
    def parse(
        cls, subjects: Subjects, subject: str, data: bytes, headers: Mapping[str, str]
    ) -> MeetingMessage | None:
        """What was said on ``subject`` (``P.meetings.{id}[.{sender}]``); None for a body
        that is not a JSON object, or whose ``type``, ``time`` or ``from`` is not text (not
        meeting traffic: a list there would be kept as its text, however long)."""
        try:
            body = decode(data)
        except PayloadError:
            return None
        body.pop("member", None)  # which room object said it: the room's business
        kind, time, claimed = body.get("type", "message"), body.get("time", ""), body.get("from")
        if not (isinstance(kind, str) and isinstance(time, str)):
            return None
        if claimed is not None and not isinstance(claimed, str):
            return None
        token = subjects.meeting_sender(subject)
        return cls(
            sender=token or claimed or headers.get(h.SENDER) or "?",
            sender_verified=token is not None,
            type=kind,
            content=body.get("content"),
            body=body,
            time=time,
        )


class Meeting:
    """A meeting room as one role. Use as ``async with fleet.meeting(id, as_role=...)``."""

    def __init__(self, fleet: Fleet, meeting_id: str, role: str) -> None:
        fleet.spec.role(role)
        self.fleet = fleet
        self.id = meeting_id
        self.role = role
        self._subjects = fleet.spec.subjects
        self.subject = self._subjects.meeting(meeting_id, role)
        self._room = self._subjects.meeting(meeting_id)
        self._said = self._room + "."
        self.members: set[str] = set()
        self._members_changed = asyncio.Event()
        self._member_id = uuid.uuid4().hex
        self._own = f'"member":"{self._member_id}"'.encode()
        """Our own words carry this, as ``_send`` encodes it: skipped without decoding."""
        self._subs: list[Subscription] = []
        self._inbox: Backlog[MeetingMessage | Msg | None] = Backlog(_BACKLOG, _BACKLOG_BYTES)
        """What was said, parsed, or as it came when it is long (parsed when read)."""
        self._answered: dict[str, float] = {}
        """When each member's join was last answered (``_JOIN_ANSWERED_EVERY``)."""

    async def __aenter__(self) -> Meeting:
        if self._subs:
            raise FleetbusError(f"already in meeting {self.id}")
        nc = self.fleet.nc
        # The room: what members say (each with its own token), and plain publishes to it.
        self._subs = [
            await subscribe_direct(nc, f"{self._room}.*", self._on_message),
            await subscribe_direct(nc, self._room, self._on_message),
        ]
        await self.fleet.conn.flush()
        self.members.add(self.role)
        await self._notice("join")
        return self

    async def __aexit__(self, *exc: object) -> None:
        subs, self._subs = self._subs, []
        if not subs:
            return
        try:
            await self._notice("leave")
        except Exception as error:  # the others see us go silent instead; we still leave
            log.info("meeting %s: the leave notice was not sent: %s", self.id, error)
        finally:
            await unsubscribe(*subs)
            self._inbox.put(None)

    async def say(self, content: Any, *, type: str = "message", **fields: Any) -> None:
        """Say ``content`` to everyone in the room (the seed's ``{"from", "type", ...}``)."""
        if type in NOTICES:
            raise FleetbusError(f"{type!r} is reserved for meeting notices")
        if "member" in fields:
            raise FleetbusError("'member' is a field of fleetbus's own in meeting messages")
        await self._send(type, content, fields)

    async def invite(self, role: str, **details: Any) -> PubAck:
        """Invite ``role``: a stored invitation its ``on_invitation`` handler will see."""
        body = {"meeting_id": self.id, "from": self.role, **details}
        return await self.fleet.invite(role, body)

    def __aiter__(self) -> AsyncIterator[MeetingMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[MeetingMessage]:
        """What others say (and their join / leave notices), in the order it was said."""
        if not self._subs:
            raise FleetbusError(f"not in meeting {self.id}: use `async with`")
        while True:
            item = await self._inbox.get()
            if item is None:
                return
            if isinstance(item, MeetingMessage):
                yield item
                continue
            message = self._parse(item)  # a long line, kept as it came
            if message is not None:
                yield message

    def _parse(self, msg: Msg) -> MeetingMessage | None:
        return MeetingMessage.parse(self._subjects, msg.subject, msg.data, msg.headers or {})

    def _on_message(self, msg: Msg) -> None:
        """Keep presence current and queue messages, whether or not anyone iterates (as the
        client reads each message: it must not wait)."""
        data, subject = msg.data, msg.subject
        if self._own in data and subject == self.subject:
            return  # our own words (another role's line naming our member id is not)
        said_here = subject.startswith(self._said) or subject == self._room
        headers = msg.headers  # none on what members say: nothing to check then
        if not said_here or (headers and not self._subjects.heard_as_sent(subject, headers)):
            # What a role had the server send here (``Subjects.heard_as_sent``): a stored
            # message pulled with this room as its reply keeps the subject it was stored
            # on; a record read back by direct get carries the server's Nats-Subject.
            return
        if len(data) > _PARSED_AT_MOST:
            self._inbox.put(msg, len(data))  # parsed when read: no notice is this long
            return
        message = self._parse(msg)
        if message is None:
            return  # not meeting traffic
        if message.type == "join":
            self._present(message.sender, True)
            self._answer_join(message.sender)
        elif message.type == "present":
            self._present(message.sender, True)
            return  # an answer to our join: presence only
        elif message.type == "leave":
            self._present(message.sender, False)
        self._inbox.put(message, len(data) * _DECODED)

    def _answer_join(self, sender: str) -> None:
        now = time.monotonic()
        if now - self._answered.get(sender, -_JOIN_ANSWERED_EVERY) < _JOIN_ANSWERED_EVERY:
            return
        if len(self._answered) >= 1024:  # senders without a token are claims: any number
            self._answered.clear()
        self._answered[sender] = now
        background(self._present_to_newcomer())

    async def _present_to_newcomer(self) -> None:
        if not self._subs:
            return  # left meanwhile: a late "present" would undo our "leave"
        with contextlib.suppress(Exception):  # then the newcomer learns of us when we speak
            await self._notice("present")

    async def until_present(self, *roles: str) -> None:
        """Return once every one of ``roles`` is in the room (bound it with
        ``asyncio.timeout``). Meeting traffic is not stored: say things once they listen."""
        while not set(roles) <= self.members:
            await self._members_changed.wait()
            self._members_changed.clear()

    def _present(self, role: str, here: bool) -> None:
        if here:
            self.members.add(role)
        else:
            self.members.discard(role)
        self._members_changed.set()

    async def _notice(self, kind: str) -> None:
        await self._send(kind, None, {})

    async def _send(self, type_: str, content: Any, fields: Mapping[str, Any]) -> None:
        body = {
            "from": self.role,
            "type": type_,
            **({"content": content} if content is not None else {}),
            **fields,
            "time": now_iso(),
            "member": self._member_id,
        }
        # No headers but a trace's: who spoke is the subject's token, and each header block
        # costs every listener's client a parse.
        headers: dict[str, str] = {}
        tracing.inject(headers)
        await self.fleet.nc.publish(
            self.subject,
            encode(body, max_payload=self.fleet.nc.max_payload),
            headers=headers or None,
        )

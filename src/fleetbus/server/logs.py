"""Read what nats-server says in its log: the addresses it listens on and why it failed. Pure.

Log lines look like ``[3646] 2026/11/25 19:13:12.496376 [INF] Listening for client
connections on 127.0.0.1:35801``. Errors from before the logger starts (a bad config file)
have no prefix: ``nats-server: fleet.conf:4:1: unknown field "bogus"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Listening", "complaint", "listening", "meta_leader", "ready", "summarize_failure"]

_PREFIX = re.compile(r"^\[\d+\] \S+ \S+ (?=\[)")
_LEVEL = re.compile(r"^\[(\w+)\] ")
_ADDRESSES = {
    "client": re.compile(r"\[INF\] Listening for client connections on (\S+):(\d+)\s*$"),
    "monitor": re.compile(r"\[INF\] Starting http monitor on (\S+):(\d+)\s*$"),
    "cluster": re.compile(r"\[INF\] Listening for route connections on (\S+):(\d+)\s*$"),
}


@dataclass(frozen=True, slots=True)
class Listening:
    """The ports the server reported it listens on (``None`` until it says so)."""

    client: int | None = None
    monitor: int | None = None
    cluster: int | None = None


def listening(text: str) -> Listening:
    """The ports found in ``text``, a chunk of the server's log (the last report wins)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        for name, pattern in _ADDRESSES.items():
            match = pattern.search(line)
            if match:
                found[name] = int(match.group(2))
    return Listening(**found)


_READY = re.compile(r"\[INF\] Server is ready\s*$", re.M)
_META_LEADER = re.compile(
    r"\[INF\] (?:JetStream cluster new metadata leader: (\S+?)/\S+"
    r"|Self is new JetStream cluster metadata leader)\s*$",
    re.M,
)


def ready(text: str) -> bool:
    """Whether the server said it is ready for clients (JetStream on and its streams
    recovered, on a single server)."""
    return _READY.search(text) is not None


def meta_leader(text: str) -> str | None:
    """The JetStream meta leader the log last named (``"self"`` when it is this node), or
    None when a cluster node has not seen one elected yet."""
    found = None
    for match in _META_LEADER.finditer(text):
        found = match.group(1) or "self"
    return found


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.strip())


def complaint(text: str) -> str:
    """The server's own words about a failure: its fatal lines, else its error lines, else
    what it printed before its logger started (bad config). Pid and timestamp removed."""
    # dict.fromkeys: each distinct line once, in order (a retrying server repeats itself).
    lines = list(dict.fromkeys(_strip(line) for line in text.splitlines() if line.strip()))
    for level in ("FTL", "ERR"):
        chosen = [line for line in lines if line.startswith(f"[{level}] ")]
        if chosen:
            return "\n".join(chosen)
    plain = [line for line in lines if not _LEVEL.match(line)]
    return "\n".join(plain)


def summarize_failure(log: str, *, store_dir: str, exit_code: int | None) -> str:
    """One line that says what went wrong, from the server's complaint ``log``."""
    first = log.splitlines()[0] if log else ""
    address = re.search(r"listen tcp (\S+): bind: address already in use", first)
    if address:
        what = "monitor port" if "monitor" in first else "port"
        if "route" in first.lower() or "cluster" in first.lower():
            what = "cluster port"
        return f"nats-server could not start: {what} {address.group(1)} is already in use"
    if "Can't start JetStream" in first:
        if "director" in first:
            return f"nats-server could not use its JetStream store directory {store_dir}"
        return "nats-server could not start JetStream"
    if "nats-server:" in first or "Parse error" in first:
        return "nats-server rejected its configuration file"
    code = "" if exit_code is None else f" with exit code {exit_code}"
    return f"nats-server exited during start-up{code}"

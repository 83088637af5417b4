"""Logs an operator can search: ``FLEETBUS_LOG_FORMAT=json`` writes one JSON object per line
with the time, level, logger, message, and — inside a handler — the role, worker, task id,
attempt and trace id; an exception's full traceback goes in ``traceback``.

``log_context`` is set by the runtime around each handler (a context variable, so it follows
the handler into the tasks and threads it starts); every log record made meanwhile carries it,
in plain text logs too.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fleetbus._terminal import visible

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "VisibleFormatter",
    "configure_logging",
    "log_context",
    "pop_log_context",
    "push_log_context",
]

_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "fleetbus_log_context", default=None
)
_FIELDS = ("role", "worker", "task_id", "attempt", "consumer")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every log record made inside carries ``fields`` (role, task_id, attempt, ...)."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def push_log_context(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """``log_context`` without the context manager (the runtime's per-delivery path): every
    record made until ``pop_log_context(token)`` carries ``fields``."""
    current = _CONTEXT.get()
    return _CONTEXT.set({**current, **fields} if current else fields)


def pop_log_context(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Copies the handler's context (and the trace id, when tracing) onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_CONTEXT.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        trace_id = _trace_id()
        if trace_id and not hasattr(record, "trace_id"):
            record.trace_id = trace_id
        return True


def _trace_id() -> str:
    from fleetbus.telemetry import tracing

    if not tracing.active():
        return ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in (*_FIELDS, "trace_id"):
            value = getattr(record, key, None)
            if value not in (None, ""):
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


JsonFormatter.converter = __import__("time").gmtime


TRACEBACK_INDENT = "  "


class VisibleFormatter(logging.Formatter):
    """Plain log lines a terminal shows as written: a message is one line with every control
    character escaped (``\x1b``, ``\n``); a traceback keeps its newlines, every one of its
    lines indented, so a line at the left margin is always a record's first. What a handler
    logs holds other roles' text (an error quoting a task's body): with an escape sequence in
    it, reading the agent's log in a terminal would run it; with a newline, it would forge a
    log line (an exception's own message is written into its traceback as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        text = visible(super().formatException(ei), multiline=True)
        return "\n".join(TRACEBACK_INDENT + line for line in text.split("\n"))


def configure_logging(level: int = logging.INFO) -> None:
    """The runtime's logging (``agent.run()``, ``fleetbus run``): plain lines, or JSON with
    ``FLEETBUS_LOG_FORMAT=json``; either way with the handler's context on each record.
    Leaves alone a program that configured logging itself."""
    root = logging.getLogger()
    if root.handlers:
        for handler in root.handlers:
            handler.addFilter(ContextFilter())
        return
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("FLEETBUS_LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(VisibleFormatter("%(asctime)s %(name)s %(message)s"))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)

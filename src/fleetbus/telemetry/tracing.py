"""OpenTelemetry traces across a fleet: one trace from the CEO's assign to the backend's
result, however many hops.

Every fleetbus send carries the W3C ``traceparent`` / ``tracestate`` of the span it is sent in
(headers), and every handler runs in a span whose parent is that context, so whatever a
handler sends is part of the same trace. Spans follow the OpenTelemetry messaging semantic
conventions: ``send {destination}`` (producer) and ``process {consumer}`` (consumer), with
``messaging.system=nats``, the destination, the message id and the task id as the
conversation id.

``opentelemetry-api`` is optional (``fleetbus[otel]``), and until a tracer provider is
configured (the SDK, an exporter) nothing here does anything: no span, no header.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, SpanKind
except ImportError:  # pragma: no cover - the otel extra not installed
    trace = None  # type: ignore[assignment]

__all__ = ["active", "consumer", "inject", "producer"]

SYSTEM = "nats"
_NO_SPAN = contextlib.nullcontext()
"""What a send or a handler runs in while no tracer provider is configured (no cost)."""
_INACTIVE = (ProxyTracerProvider, NoOpTracerProvider) if trace is not None else ()


_UNREAD = object()
_asked = False


def active() -> bool:
    """Whether a tracer provider is configured (otherwise tracing costs nothing).

    Asked for every delivery and every send. Until a provider is set, OpenTelemetry's
    ``get_tracer_provider`` looks ``OTEL_PYTHON_TRACER_PROVIDER`` up in the environment on
    every call (to load the provider it names): 5 % of what an event's delivery cost the
    consume loop. So it is called once, to load that one, and after that the provider
    OpenTelemetry keeps is read where it keeps it: a provider set later, by code or by
    anyone's ``get_tracer_provider`` call, is seen at once. An OpenTelemetry that keeps it
    elsewhere is asked every time, as before."""
    global _asked
    if trace is None:
        return False
    provider = getattr(trace, "_TRACER_PROVIDER", _UNREAD) if _asked else _UNREAD
    if provider is _UNREAD:
        _asked = True
        provider = trace.get_tracer_provider()
    return provider is not None and not isinstance(provider, _INACTIVE)


def _attributes(
    destination: str, operation: str, message_id: str | None, conversation_id: str | None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.destination.name": destination,
        "messaging.operation.type": operation,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    if conversation_id:
        attributes["messaging.message.conversation_id"] = conversation_id
    return attributes


def producer(
    destination: str, *, message_id: str | None = None, conversation_id: str | None = None
) -> AbstractContextManager[object]:
    """A ``send`` span around a send; ``inject`` within it carries it to the receiver."""
    if not active():
        return _NO_SPAN
    return trace.get_tracer("fleetbus").start_as_current_span(
        f"send {destination}",
        kind=SpanKind.PRODUCER,
        attributes=_attributes(destination, "send", message_id, conversation_id),
    )


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's context to ``headers`` (nothing without a span)."""
    if active():
        propagate.inject(headers)


def consumer(
    headers: Mapping[str, str] | None,
    destination: str,
    *,
    message_id: str | None = None,
    conversation_id: str | None = None,
) -> AbstractContextManager[object]:
    """A ``process`` span, child of the sender's (from ``headers``), around a handler."""
    if not active():
        return _NO_SPAN
    return trace.get_tracer("fleetbus").start_as_current_span(
        f"process {destination}",
        context=propagate.extract(dict(headers or {})),
        kind=SpanKind.CONSUMER,
        attributes=_attributes(destination, "process", message_id, conversation_id),
    )

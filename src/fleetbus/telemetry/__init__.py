"""What fleetbus tells an operator about itself: Prometheus metrics of an agent process
(``metrics``), OpenTelemetry traces across a delegation (``tracing``), and structured logs
(``logs``). Each costs nothing until it is turned on."""

from fleetbus.telemetry import tracing
from fleetbus.telemetry.logs import (
    configure_logging,
    log_context,
    pop_log_context,
    push_log_context,
)
from fleetbus.telemetry.metrics import METRICS, Metrics

__all__ = [
    "METRICS",
    "Metrics",
    "configure_logging",
    "log_context",
    "pop_log_context",
    "push_log_context",
    "tracing",
]

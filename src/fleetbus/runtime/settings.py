"""How the runtime consumes: ``RuntimeSettings``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RuntimeSettings"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RuntimeSettings:
    """How the runtime consumes. The defaults suit agents that run for weeks."""

    poll: float = 30.0
    """Length of one long poll (a fetch that waits for work). Idle cost: one pull request per
    consumer per poll. A new consumer leader ends the open polls itself (nats-server 2.15:
    ``409 Leadership Change``) and a reconnect re-asks at once; a poll that nothing ends (a
    partition, a server that does not send the 409) is asked again after this long plus a
    second."""
    accepted_after: float = 0.25
    """A task's ``accepted`` update is written once its handler has run this long (or before
    its first progress or input request); a task that ends sooner has only its outcome,
    which names the worker and the attempt. 0: written as each attempt starts."""
    grace: float = 30.0
    """On shutdown, how long running handlers may finish before they are naked."""
    retry_base: float = 2.0
    """Delay before the first retry; doubles per attempt (unless the consumer has backoff)."""
    retry_max: float = 300.0
    dead_letter_retry: float = 30.0
    """When a dead letter cannot be stored (a full disk, a full dead-letter stream), the
    message stays where it is and is tried again after this long."""
    presence_interval: float = 3.0
    """How often the agent renews its presence record (``fleetbus agents``)."""
    presence_grace: float = 15.0
    """How long without a renewal before readers take the agent for offline (after two
    missed renewals it is ``suspect``): a stall shorter than this never reaps it."""
    blocked_loop_warning: float = 1.0
    """Log (with the running handlers' names) when the event loop is blocked this long."""
    max_concurrency: int = 64
    """Upper bound on handlers run at once per consumer (max_ack_pending is the usual bound)."""
    left_behind_limit: int = 16
    """Handlers that went on after they were cancelled (a loop that catches
    ``CancelledError``) are left running; when this many are, the agent stops serving
    (``serve_forever`` raises, ``run`` exits 1) so that a supervisor starts a fresh process."""
    dead_letter_copier: bool = True
    """Run the copier that turns max-deliveries advisories into dead letters (only an agent
    connected as the admin, or without auth, can: it reads other roles' messages)."""

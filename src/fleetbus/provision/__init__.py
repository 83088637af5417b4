"""Provisioning: plan the fleet file against the live server, then apply it idempotently."""

from fleetbus.provision.apply import (
    ApplyResult,
    apply_plan,
    cluster_size,
    provision,
    provision_at,
    read_live,
    refusal,
)
from fleetbus.provision.plan import Action, Change, LiveState, Plan, build_plan

__all__ = [
    "Action",
    "ApplyResult",
    "Change",
    "LiveState",
    "Plan",
    "apply_plan",
    "build_plan",
    "cluster_size",
    "provision",
    "provision_at",
    "read_live",
    "refusal",
]

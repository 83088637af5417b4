"""fleetbus benchmarks: every scenario measured for fleetbus and for the equivalent
hand-written raw nats-py code, in the same run, alternating, several rounds.

    python -m bench            # the normal run (a few minutes)
    python -m bench --quick    # a sub-minute smoke run: small counts, one round
    python -m bench --full     # adds the issue's 100 roles x 10,000 events fan-out
    python -m bench --json results.json

Figures are medians over rounds with min and max; ratio = fleetbus / raw (for a latency,
lower is better; for a rate, higher is better).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetbus.fleet import FleetSpec
    from fleetbus.testing.fleets import FleetUnderTest

__all__ = ["Env", "Metric", "Scenario", "percentile", "print_measures", "rate"]

Side = Callable[["Env", dict[str, Any]], Awaitable[dict[str, float]]]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # "µs", "ms", "msg/s", "tasks/s"
    higher_is_better: bool


@dataclass
class Scenario:
    group: str
    name: str
    metrics: list[Metric]
    fleetbus: Side
    raw: Side
    params: dict[str, Any] = field(default_factory=dict)
    fleetbus_label: str = "fleetbus"
    raw_label: str = "raw nats-py"
    note: str = ""
    framework: Side | None = None
    """A third column: the same work in another framework (FastStream), when it applies."""
    framework_label: str = ""


@dataclass
class Env:
    url: str
    quick: bool
    full: bool

    async def fleet(self, spec: FleetSpec | None = None) -> FleetUnderTest:
        """A freshly provisioned, isolated fleet (its own prefix and streams)."""
        from fleetbus.fleet import seed_fleet
        from fleetbus.testing.fleets import FleetUnderTest, isolate, provision_fleet

        isolated = isolate(spec or seed_fleet())
        await provision_fleet(self.url, isolated)
        return FleetUnderTest(isolated, self.url)


def print_measures(values: dict[str, Any]) -> None:
    """A scenario's figures, one a line, for ``python -m bench.<scenario>``."""
    width = max(map(len, values), default=0) + 2
    for key, value in values.items():
        print(f"{key:>{width}}: {value}")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_metrics(samples_s: list[float]) -> dict[str, float]:
    us = [s * 1e6 for s in samples_s]
    return {
        "p50": percentile(us, 50),
        "p99": percentile(us, 99),
        "p999": percentile(us, 99.9),
    }


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


LATENCY = [
    Metric("p50", "p50", "µs", False),
    Metric("p99", "p99", "µs", False),
    Metric("p999", "p99.9", "µs", False),
]


@dataclass
class Result:
    scenario: Scenario
    fleetbus: list[dict[str, float]] = field(default_factory=list)
    raw: list[dict[str, float]] = field(default_factory=list)
    framework: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for metric in self.scenario.metrics:
            fb = [r[metric.key] for r in self.fleetbus if metric.key in r]
            rw = [r[metric.key] for r in self.raw if metric.key in r]
            row: dict[str, Any] = {
                "group": self.scenario.group,
                "scenario": self.scenario.name,
                "metric": metric.label,
                "unit": metric.unit,
                "higher_is_better": metric.higher_is_better,
                "fleetbus_label": self.scenario.fleetbus_label,
                "raw_label": self.scenario.raw_label,
                "fleetbus": _stats(fb),
                "raw": _stats(rw),
            }
            f, r = row["fleetbus"]["median"], row["raw"]["median"]
            row["ratio"] = _ratio(f, r)
            if self.scenario.framework is not None:
                other = [r[metric.key] for r in self.framework if metric.key in r]
                row["framework_label"] = self.scenario.framework_label
                row["framework"] = _stats(other)
                row["framework_ratio"] = _ratio(f, row["framework"]["median"])
            rows.append(row)
        return rows


def _ratio(a: float, b: float) -> float:
    return a / b if a == a and b == b and b else float("nan")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


STALLED = 600.0
"""Seconds one side of one round may take before the run is stopped as stalled."""


async def run_scenario(
    env: Env, scenario: Scenario, rounds: int, log: Callable[[str], None]
) -> Result:
    result = Result(scenario)
    for round_ in range(rounds):
        sides: list[tuple[str, Side]] = [("fleetbus", scenario.fleetbus), ("raw", scenario.raw)]
        if scenario.framework is not None:
            sides.append(("framework", scenario.framework))
        shift = round_ % len(sides)  # rotate who goes first
        sides = sides[shift:] + sides[:shift]
        for name, side in sides:
            gc.collect()
            started = time.perf_counter()
            stall = asyncio.timeout(STALLED)
            try:
                async with stall:
                    values = await side(env, dict(scenario.params))
            except TimeoutError:
                if not stall.expired():
                    raise  # the side's own timeout: it says what
                for task in asyncio.all_tasks():  # where it waits, for whoever reads the log
                    task.print_stack(limit=8, file=sys.stderr)
                raise TimeoutError(
                    f"benchmark stalled: {scenario.group} / {scenario.name} round"
                    f" {round_ + 1} {name} did not end within {STALLED:.0f}s"
                ) from None
            getattr(result, name).append(values)
            log(
                f"  {scenario.group} / {scenario.name} round {round_ + 1} {name}:"
                f" {_short(values)} ({time.perf_counter() - started:.1f}s)"
            )
    return result


def _short(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:,.0f}" for k, v in values.items())


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"benchmark stalled: {what}")
        await asyncio.sleep(0.001)

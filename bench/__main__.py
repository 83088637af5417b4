"""``python -m bench``: run every scenario for fleetbus and raw nats-py, print a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench import Env, Scenario, consume, meetings, publish, run_scenario, tasks

T = TypeVar("T")


def all_scenarios(quick: bool, full: bool) -> list[Scenario]:
    out: list[Scenario] = []
    for module in (publish, consume, tasks, meetings):
        out.extend(module.scenarios(quick, full))
    return out


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from fleetbus.server.binary import find_nats_server

    version = ""
    try:
        import subprocess

        version = subprocess.run(
            [str(find_nats_server()), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except Exception:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "nats_server": version,
        "load_before": os.getloadavg(),
    }


def _fmt(value: float, unit: str) -> str:
    if value != value:
        return "-"
    if unit in ("msg/s", "tasks/s"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def _spread(stats: dict[str, float], unit: str) -> str:
    median, low, high = (_fmt(stats[k], unit) for k in ("median", "min", "max"))
    return escape(f"{median}  [{low}–{high}]")


def render(rows: list[dict[str, Any]], console: Console, title: str) -> None:
    table = Table(title=escape(title), show_lines=False)
    framework = next((r["framework_label"] for r in rows if r.get("framework_label")), "")
    columns = ["scenario", "metric", "fleetbus", "raw nats-py", "fleetbus / raw"]
    if framework:
        columns += [framework.split()[0], f"fleetbus / {framework.split()[0]}"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("scenario", "metric") else "right")
    last = ""
    for row in rows:
        name = f"{row['group']}: {row['scenario']}\n  {row['fleetbus_label']} vs {row['raw_label']}"
        fb, rw = row["fleetbus"], row["raw"]
        unit = row["unit"]
        first = name != last
        if first and last:
            table.add_section()
        last = name
        cells = [
            name if first else "",
            f"{row['metric']} ({unit})",
            _spread(fb, unit),
            _spread(rw, unit),
            f"{row['ratio']:.2f}" if row["ratio"] == row["ratio"] else "-",
        ]
        if framework:
            other = row.get("framework")
            ratio = row.get("framework_ratio", float("nan"))
            cells += [
                _spread(other, unit) if other else "",
                f"{ratio:.2f}" if ratio == ratio else "",
            ]
        table.add_row(*cells, end_section=False)
    console.print(table)


async def main_async(args: argparse.Namespace, console: Console) -> list[dict[str, Any]]:
    from fleetbus.testing import run_nats_server

    rounds = 1 if args.quick else args.rounds
    scenarios = all_scenarios(args.quick, args.full)
    if args.only:
        scenarios = [s for s in scenarios if any(o in f"{s.group} {s.name}" for o in args.only)]
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="fleetbus-bench-") as tmp,
        run_nats_server(tmp) as server,
    ):
        env = Env(server.url, args.quick, args.full)
        for scenario in scenarios:
            result = await run_scenario(
                env, scenario, rounds, lambda line: console.print(line, style="dim", markup=False)
            )
            rows.extend(result.summary())
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="sub-minute smoke run, 1 round")
    parser.add_argument("--full", action="store_true", help="add 100 roles x 10,000 events")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--only", nargs="*", help="run scenarios whose name contains one of these")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop every side runs on (uvloop: what Agent.run() picks when installed)",
    )
    parser.add_argument(
        "--no-failover",
        action="store_true",
        help="skip the 3-node failover measurement (skipped by --quick too)",
    )
    parser.add_argument(
        "--no-scale",
        action="store_true",
        help="skip fleet scale: 1,000 idle agents for 60 s (skipped by --quick too)",
    )
    parser.add_argument(
        "--no-soak",
        action="store_true",
        help="skip the soak: 100,000 tasks, 1,000,000 events, 5 agent kills (skipped by --quick"
        " too)",
    )
    parser.add_argument(
        "--no-dashboard",
        action="store_true",
        help="skip the dashboard's first render: 1,000 agents, 10,000 tasks (skipped by --quick)",
    )
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    info = machine()
    started = time.time()
    info["loop"] = args.loop
    rows = _run(main_async(args, console), args.loop)
    info["load_after"] = os.getloadavg()
    info["seconds"] = round(time.time() - started, 1)
    title = (
        f"fleetbus vs raw nats-py — median [min–max] of {1 if args.quick else args.rounds}"
        f" round(s); {info['nproc']} cores, {info['cpu']}, {info['nats_server']}, {args.loop}"
    )
    render(rows, console, title)
    console.print(
        f"load average before {info['load_before'][0]:.2f}, after {info['load_after'][0]:.2f};"
        f" {info['seconds']}s"
    )
    failover: list[dict[str, Any]] = []
    if not (args.quick or args.no_failover or args.only):
        from bench.failover import run_all

        failover = asyncio.run(run_all())
        render_failover(failover, console)
    scale: dict[str, Any] = {}
    if not (args.quick or args.no_scale or args.only):
        from bench.scale import measure

        scale = asyncio.run(measure(agents=1000, processes=2, idle=60.0))
        render_measures(scale, console, "fleet scale: idle agents, 3 durable consumers each")
    tasklist: dict[str, Any] = {}
    if not (args.quick or args.only):
        from bench.tasklist import measure as tasklist_measure

        tasklist = asyncio.run(tasklist_measure(10_000))
        render_measures(
            tasklist, console, "the task list: 10,000 tasks stored, fleet.tasks(limit=100)"
        )
    dashboard: dict[str, Any] = {}
    if not (args.quick or args.no_dashboard or args.only):
        from bench.dashboard import measure as measure_dashboard

        dashboard = asyncio.run(measure_dashboard(agents=1000, tasks=10_000, rounds=3))
        render_measures(
            dashboard,
            console,
            "dashboard: first render, 1,000 polling agents, 10,000 tasks stored",
            "measure (seconds: median [min-max] of 3 cold starts)",
        )
    soak: dict[str, dict[str, Any]] = {}
    if not (args.quick or args.no_soak or args.only):
        from bench.soak import measure as soak_measure

        soak = asyncio.run(soak_measure(tasks=100_000, events=1_000_000, kills=5))
        for name, figures in soak.items():
            render_measures(figures, console, f"soak: {name}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "results": rows,
                    "failover": failover,
                    "scale": scale,
                    "soak": soak,
                    "tasklist": tasklist,
                    "dashboard": dashboard,
                },
                indent=2,
            )
        )
    return 0


def render_measures(
    values: dict[str, Any], console: Console, title: str, column: str = "measure"
) -> None:
    table = Table(title=title)
    table.add_column(column)
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)


def _run(main: Coroutine[Any, Any, T], loop: str) -> T:
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def render_failover(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="failover: 3-node cluster, the R3 stream's leader stopped while publishing")
    for col in ("leader stopped by", "fleetbus outage", "raw nats-py outage", "ratio",
                "fleetbus acked / stored", "raw acked / stored"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r["signal"],
            f"{r['fleetbus_outage_s']:.3f} s",
            f"{r['raw_outage_s']:.3f} s",
            f"{r['fleetbus_outage_s'] / r['raw_outage_s']:.2f}" if r["raw_outage_s"] else "-",
            f"{r['fleetbus_acked']} / {r['fleetbus_stored']}",
            f"{r['raw_acked']} / {r['raw_stored']}",
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())

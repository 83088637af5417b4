"""``python -m bench --quick`` runs every scenario end to end and prints its table.

It asserts nothing about speed: figures come from the benchmark itself, never from tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` from the project's root, which must exit 0."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_bench_runs_and_prints_a_table(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = bench("bench", "--quick", "--json", str(out))
    assert "fleetbus / raw" in proc.stdout
    results = json.loads(out.read_text())["results"]
    groups = {r["group"] for r in results}
    assert {
        "awaited publish",
        "pipelined publish",
        "consume + ack",
        "task round trip",
        "event fan-out",
        "meetings (core NATS)",
    } <= groups
    assert all(r["fleetbus"]["n"] == 1 and r["raw"]["n"] == 1 for r in results)


@pytest.mark.timeout(120)
def test_the_auth_bench_runs_both_servers_and_prints_ratios() -> None:
    proc = bench("bench.auth", "--count", "20", "--rounds", "1")
    for figure in ("task p50 (ms)", "tasks/s", "emit p50 (us)", "raw js.publish p50 (us)"):
        assert f"{figure}: auth off " in proc.stdout and "on / off" in proc.stdout, proc.stdout


@pytest.mark.timeout(120)
def test_the_scale_bench_logs_every_agent_in_as_its_role_with_auth() -> None:
    proc = bench("bench.scale", "--agents", "60", "--processes", "1", "--idle", "1", "--auth")
    figures = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in proc.stdout.splitlines())
    )
    assert figures["auth"] == "True", proc.stdout
    assert figures["durable_consumers"] == "181", proc.stdout  # 3 per role, and the admin's
    assert float(figures["agents_started_s"]) > 0, proc.stdout  # every agent said it started


@pytest.mark.timeout(120)
def test_the_scale_bench_measures_raw_nats_py_on_the_same_fleet() -> None:
    """``--raw``: hand-written clients hold a long poll on every consumer of the provisioned
    fleet, in as many processes, and the server's idle CPU beside them is reported."""
    proc = bench("bench.scale", "--agents", "60", "--processes", "2", "--idle", "1", "--raw")
    figures = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in proc.stdout.splitlines())
    )
    assert figures["client"].startswith("raw nats-py"), proc.stdout
    assert (figures["processes"], figures["durable_consumers"]) == ("2", "181"), proc.stdout
    assert figures["presence"] == "False", proc.stdout
    assert float(figures["agents_started_s"]) > 0, proc.stdout  # every client said it asked
    assert float(figures["server_cpu_percent_of_a_core"]) >= 0, proc.stdout


@pytest.mark.timeout(120)
def test_the_task_wire_bench_runs_the_three_ways_and_prints_ratios() -> None:
    proc = bench("bench.taskwire", "--workers", "2", "--count", "20", "--rounds", "1")
    for way in ("fleetbus", "raw", "raw, fleetbus's wire"):
        line = next(
            (line for line in proc.stdout.splitlines() if line.strip().startswith(f"2/2 {way}:")),
            "",
        )
        assert "tasks/s" in line and "CPU per task" in line and "/ raw:" in line, proc.stdout

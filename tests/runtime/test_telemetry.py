"""Observability of an agent process: its /metrics after a few tasks, one trace across a
three-hop delegation, and JSON log lines that say which task failed and why."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from fleetbus import Reject, Retry, Task, TaskError
from fleetbus.telemetry.logs import VisibleFormatter
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as {"name{labels}": value}, the ``fleetbus_`` samples only."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("fleetbus_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def sample(metrics: dict[str, float], name: str, **labels: str) -> float:
    """The value of ``name`` with exactly these labels (0 when absent)."""
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if base == name and found == labels:
            return value
    return 0.0


async def test_an_agents_metrics_count_what_it_did(fleet: FleetUnderTest) -> None:
    agent = fleet.agent("backend", metrics_port=0)
    tries: dict[str, int] = {}

    @agent.on_task
    async def work(task: Task) -> str:
        tries[task.id] = tries.get(task.id, 0) + 1
        if task.body.get("reject"):
            raise Reject("not mine")
        if task.body.get("flaky") and tries[task.id] == 1:
            raise Retry(delay=0.1, reason="flaky once")
        return "ok"

    async with agent, fleet.client(sender="cto") as cto:
        assert agent.metrics_port
        port = agent.metrics_port
        before = await asyncio.to_thread(scrape, port)
        handles = [await cto.assign("backend", {"n": n}) for n in range(3)]
        handles.append(await cto.assign("backend", {"flaky": True}))
        rejected = await cto.assign("backend", {"reject": True})
        for handle in handles:
            assert await handle.result(timeout=15) == "ok"
        with pytest.raises(TaskError):
            await rejected.result(timeout=15)
        after: dict[str, float] = {}

        def delta(name: str, **labels: str) -> float:
            return sample(after, name, **labels) - sample(before, name, **labels)

        async def settled() -> bool:
            # An attempt's duration is observed when its handler call ends, which for a
            # rejected or retried one is after its record is stored (what result() waits for).
            nonlocal after
            after = await asyncio.to_thread(scrape, port)
            durations = delta(
                "fleetbus_handler_duration_seconds_count", role="backend", kind="tasks"
            )
            return durations >= 6

        await eventually(settled, 15, "six handler durations observed")

    assert delta("fleetbus_tasks_total", role="backend", outcome="completed") == 4
    assert delta("fleetbus_tasks_total", role="backend", outcome="rejected") == 1
    assert delta("fleetbus_retries_total", role="backend", kind="tasks") == 1
    assert delta("fleetbus_dead_letters_total", role="backend", kind="tasks") == 1
    assert delta("fleetbus_messages_handled_total", role="backend", kind="tasks") == 4
    assert delta("fleetbus_handler_duration_seconds_count", role="backend", kind="tasks") == 6
    assert sample(after, "fleetbus_in_flight", role="backend", kind="tasks") == 0
    assert delta("fleetbus_publish_duration_seconds_count") >= 5  # records and dead letters


TRACED = """
import asyncio
import json
import sys
from pathlib import Path

import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetbus import Agent, Fleet, RuntimeSettings, Task
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

spec = FleetSpec.model_validate(yaml.safe_load(Path(sys.argv[1]).read_text()))
url = sys.argv[2]


def agent(role):
    return Agent(role, spec=spec, connection=ConnectSettings.from_url(url),
                 settings=RuntimeSettings(poll=1.0))


cto, backend = agent("cto"), agent("backend")


@cto.on_task
async def plan(task: Task) -> dict:
    handle = await cto.fleet.assign("backend", {"title": "part"})
    return {"part": await handle.result(timeout=20)}


@backend.on_task
async def build(task: Task) -> str:
    return "built"


async def main() -> None:
    async with cto, backend:
        async with Fleet.connect(spec=spec, connection=ConnectSettings.from_url(url),
                                 sender="ceo") as ceo:
            handle = await ceo.assign("cto", {"title": "feature"})
            assert await handle.result(timeout=30) == {"part": "built"}
    spans = [
        {
            "name": s.name,
            "kind": s.kind.name,
            "trace": format(s.context.trace_id, "032x"),
            "span": format(s.context.span_id, "016x"),
            "parent": format(s.parent.span_id, "016x") if s.parent else None,
            "attributes": dict(s.attributes or {}),
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps(spans))


asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_three_hop_delegation_is_one_trace(fleet: FleetUnderTest, tmp_path: Path) -> None:
    """ceo assigns cto a feature; cto's handler assigns backend a part. The spans, from
    OpenTelemetry's in-memory exporter, form one trace: send → process → send → process."""
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    script = tmp_path / "traced.py"
    script.write_text(TRACED)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(spec_file), fleet.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    spans = json.loads(out.decode().strip().splitlines()[-1])
    p = fleet.spec.prefix
    by_name = {s["name"]: s for s in spans}
    ceo_send = by_name[f"send {p}.agents.cto.tasks.ceo"]
    cto_process = by_name["process CTO_TASKS"]
    cto_send = by_name[f"send {p}.agents.backend.tasks.cto"]
    backend_process = by_name["process BACKEND_TASKS"]
    chain = [ceo_send, cto_process, cto_send, backend_process]
    assert {s["trace"] for s in chain} == {ceo_send["trace"]}  # one trace
    assert ceo_send["parent"] is None
    assert cto_process["parent"] == ceo_send["span"]
    assert cto_send["parent"] == cto_process["span"]
    assert backend_process["parent"] == cto_send["span"]
    assert [s["kind"] for s in chain] == ["PRODUCER", "CONSUMER", "PRODUCER", "CONSUMER"]
    attributes = backend_process["attributes"]
    assert attributes["messaging.system"] == "nats"
    assert attributes["messaging.destination.name"] == "BACKEND_TASKS"
    assert (
        attributes["messaging.message.conversation_id"]
        == cto_send["attributes"]["messaging.message.id"]
    )


FAILING = """
import sys
from pathlib import Path

import yaml

from fleetbus import Agent, RuntimeSettings, Task
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings

spec = FleetSpec.model_validate(yaml.safe_load(Path(sys.argv[1]).read_text()))
agent = Agent("backend", spec=spec, connection=ConnectSettings.from_url(sys.argv[2]),
              settings=RuntimeSettings(poll=1.0, retry_base=0.1, retry_max=0.2))


def connect_to_cluster():
    raise RuntimeError("cluster unreachable")


@agent.on_task
async def deploy(task: Task) -> None:
    connect_to_cluster()


agent.run()
"""


async def test_json_logs_say_which_task_failed_and_why(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    env = {**os.environ, "FLEETBUS_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(spec_file), fleet.url, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with fleet.client(sender="cto") as cto:
            handle = await cto.assign("backend", {"title": "deploy"})
            with pytest.raises(TaskError, match="cluster unreachable"):
                await handle.result(timeout=30)
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    raised = [e for e in lines if e.get("task_id") == handle.id and "traceback" in e]
    assert len(raised) == 3  # one per attempt, each with the full traceback
    first = raised[0]
    assert (first["level"], first["role"], first["attempt"]) == ("error", "backend", 1)
    assert first["logger"] == "fleetbus.runtime" and first["worker"].startswith("backend-")
    assert "in connect_to_cluster" in first["traceback"]
    assert "RuntimeError: cluster unreachable" in first["traceback"]


def test_plain_log_lines_show_a_roles_text_as_written() -> None:
    """A handler's error quotes what another role sent: in a plain log line an escape
    sequence would run in the terminal reading it, and a newline would forge a line."""
    hostile = "bad title \x1b]52;c;cHduZWQ=\x07\x1b[2J\n2026-12-02 fleetbus.runtime all good"
    try:
        raise ValueError(hostile)
    except ValueError:
        record = logging.LogRecord(
            "fleetbus.runtime", logging.ERROR, __file__, 1, "handler raised: %s", (hostile,),
            sys.exc_info(),
        )  # fmt: skip
    line = VisibleFormatter("%(name)s %(message)s").format(record)
    assert "\x1b" not in line and "\x07" not in line
    first, *traceback_lines = line.split("\n")
    assert first.startswith("fleetbus.runtime handler raised: bad title \\x1b]52;c;")
    assert first.endswith("\\n2026-12-02 fleetbus.runtime all good")  # one line
    assert traceback_lines[0] == "  Traceback (most recent call last):"
    # the traceback keeps its lines, its escapes shown, and none of them (the exception's own
    # newline included) starts where a record starts
    assert "  ValueError: bad title \\x1b]52;c;cHduZWQ=\\x07\\x1b[2J" in traceback_lines
    assert "  2026-12-02 fleetbus.runtime all good" in traceback_lines
    assert all(t.startswith("  ") for t in traceback_lines)

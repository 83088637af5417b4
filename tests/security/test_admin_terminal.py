"""What a compromised role writes reaches the admin's terminal as text, never as commands.

Each attack is a real client with the role's own credentials writing a hostile record (an
entry of the task list, a task record, a dead letter, a presence record); then the real
``fleetbus`` command, as the admin, lists it. Its raw output holds no escape byte, shows the
escape sequences and the rich markup as written, and lists the honest records beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import yaml

from fleetbus.deadletters import DeadLetters
from fleetbus.runtime import Request, Task
from fleetbus.security import ADMIN
from fleetbus.testing import eventually

from .support import AuthFleet, agent, attacker, client

ESC = "\x1b"
HOSTILE = (
    f"{ESC}]0;PWNED-TITLE{ESC}\\ {ESC}]52;c;ZWNobyBwd25lZA=={ESC}\\ "
    f"[link=https://evil.example/x]click to re-auth[/link] {ESC}[2J{ESC}[31mRED{ESC}[0m [/]"
)
"""Set the window title, write the clipboard (OSC 52), a hyperlink in rich markup, clear the
screen, colour; and a closing tag that made rich raise."""

SHOWN = (
    r"\x1b]0;PWNED-TITLE\x1b\ \x1b]52;c;ZWNobyBwd25lZA==\x1b\ "
    r"[link=https://evil.example/x]click to re-auth[/link] \x1b[2J\x1b[31mRED\x1b[0m [/]"
)
"""How the admin sees it: every escape written out, the markup as it was written."""


async def fleetbus(fleet: AuthFleet, workdir: Path, *args: str) -> tuple[int, bytes, str]:
    """``fleetbus ARGS`` as the admin, in a subprocess: exit code, raw stdout, stderr."""
    spec_file = workdir / "fleet.yaml"
    spec_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    admin = fleet.credentials[ADMIN]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env["COLUMNS"] = "1000"  # a table keeps each cell on one line
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetbus", "--fleet", str(spec_file), "--server", fleet.url,
        "--user", admin.user, "--password", admin.password, *args,
        cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


def assert_shown_as_text(out: bytes, *needles: str) -> str:
    """No escape byte reached stdout; each needle is in it, as written."""
    assert ESC.encode() not in out, out
    text = out.decode()
    for needle in needles:
        assert needle in text, (needle, text)
    return text


async def publish(fleet: AuthFleet, role: str, subject: str, body: dict[str, object]) -> None:
    """``body`` on ``subject``, published with ``role``'s credentials, and let through."""
    async with attacker(fleet, role) as conn:
        await conn.nc.publish(subject, json.dumps(body).encode())
        await conn.flush()
        await asyncio.sleep(0.2)  # a refusal arrives asynchronously
        assert not conn.refused(subject), subject


async def test_tasks_shows_an_assigners_hostile_entries_as_text(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    s = auth_fleet.spec.subjects
    entry = {"state": "progress", "created": "2026-01-01T00:00:00Z"}
    entry["updated"] = "2026-01-01T00:00:01Z"
    async with client(auth_fleet, "cto") as cto:
        await cto.assign("backend", {"title": "honest"}, task_id="t-honest")
    hostile = {
        "t-escapes": {**entry, "message": HOSTILE},
        "t-percent": {**entry, "percent": "x", "message": "half", "attempt": "1"},
        "t-updated": {**entry, "updated": 5},
    }
    for task_id, body in hostile.items():
        await publish(auth_fleet, "cto", s.task_index("backend", "cto", task_id), body)

    code, out, err = await fleetbus(auth_fleet, tmp_path, "tasks")

    assert code == 0, err
    text = assert_shown_as_text(out, SHOWN, "t-honest")
    # A field of the wrong type is dropped; an entry without a time is not listed.
    assert "half" in next(line for line in text.splitlines() if "t-percent" in line)
    assert "t-updated" not in text
    code, out, err = await fleetbus(auth_fleet, tmp_path, "tasks", "--json")
    assert code == 0, err
    assert ESC.encode() not in out
    listed = {t["task_id"]: t for t in json.loads(out)}
    assert set(listed) == {"t-honest", "t-escapes", "t-percent"}
    assert listed["t-escapes"]["message"] == HOSTILE  # --json keeps the text exact
    assert "percent" not in listed["t-percent"] and listed["t-percent"]["attempt"] == 0


async def test_task_shows_a_workers_hostile_records_as_text(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    s = auth_fleet.spec.subjects
    subject = s.task("t-records", "updates", "cto", "backend")
    update = {"task_id": "t-records", "state": "progress", "agent": "backend", "attempt": 1}
    update |= {"worker": "backend-1", "time": "2026-01-01T00:00:00.000Z"}
    await publish(auth_fleet, "backend", subject, {**update, "message": HOSTILE})
    await publish(auth_fleet, "backend", subject, {**update, "percent": 50, "message": "half"})
    # a field of the wrong type: not a task record (TaskUpdate.decode), so not shown
    await publish(auth_fleet, "backend", subject, {**update, "percent": "x", "message": "typed"})

    code, out, err = await fleetbus(auth_fleet, tmp_path, "task", "t-records", "--role", "backend")

    assert code == 0, err
    text = assert_shown_as_text(out, SHOWN, "half")
    assert "Traceback" not in err
    assert text.count("progress") == 2 and "typed" not in text


async def test_dlq_shows_hostile_dead_letters_as_text(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    s = auth_fleet.spec.subjects
    backend = agent(auth_fleet, "backend")

    @backend.on_task
    async def work(task: Task) -> str:
        return "done"

    # cto sends a body that is not JSON: the honest agent dead-letters it as it came.
    async with backend, attacker(auth_fleet, "cto") as cto, attacker(auth_fleet, ADMIN) as admin:
        body = f"[/] {HOSTILE}".encode()
        await cto.nc.publish(s.tasks("backend", "cto"), body, headers={"X-Note": HOSTILE})
        dead_letters = DeadLetters(admin, auth_fleet.spec)
        await eventually(dead_letters.count, what="the dead letter")
        entries = await dead_letters.list()
    [honest] = entries
    assert honest.body == body

    code, out, err = await fleetbus(auth_fleet, tmp_path, "dlq", "show", str(honest.id))

    assert code == 0, err
    text = assert_shown_as_text(out, f"body: [/] {SHOWN}", "X-Note")
    assert repr(HOSTILE)[1:-1] in text  # the headers, as a dict shows them

    # backend writes a dead letter of its own consumer, with a hostile reason.
    forged = s.dead_letter(honest.stream, honest.consumer, 999)
    async with attacker(auth_fleet, "backend") as conn:
        await conn.nc.publish(
            forged,
            b"{}",
            headers={
                "Fleet-Dlq-Reason": HOSTILE,
                "Fleet-Dlq-Subject": s.tasks("backend", "cto"),
                "Fleet-Dlq-Stream": honest.stream,
                "Fleet-Dlq-Consumer": honest.consumer,
            },
        )
        await conn.flush()
        await asyncio.sleep(0.2)
        assert not conn.refused(forged)

    code, out, err = await fleetbus(auth_fleet, tmp_path, "dlq", "list")

    assert code == 0, err
    text = assert_shown_as_text(out, SHOWN, "bad payload")
    assert "2 dead letter(s)" in text


async def test_agents_shows_a_hostile_presence_record_as_text(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    s = auth_fleet.spec.subjects
    record = {"host": HOSTILE, "pid": 1, "version": "1", "started": "2026-01-01T00:00:00Z"}
    record |= {"state": "running", "interval": 5.0, "grace": 60.0, "handled": {"tasks": "x"}}
    await publish(auth_fleet, "devops", s.presence("devops", "devops-12345678"), record)

    code, out, err = await fleetbus(auth_fleet, tmp_path, "agents")

    assert code == 0, err
    assert_shown_as_text(out, SHOWN, "devops-12345678")


async def test_ask_shows_an_agents_hostile_error_as_text(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    backend = agent(auth_fleet, "backend")

    @backend.on_request
    async def answer(request: Request) -> dict[str, object]:
        raise ValueError(HOSTILE)

    async with backend:
        code, out, err = await fleetbus(auth_fleet, tmp_path, "ask", "backend", "{}")

    assert code == 1
    assert ESC not in err and not out, (out, err)
    assert err.startswith("error: backend failed to answer: ") and SHOWN in err, err


async def test_a_task_id_another_role_reuses_is_never_acted_on_by_guess(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    """backend learns the id of a task cto gave devops (a presence record lists what an
    agent holds) and writes its own entry and input request under that id, dated in the
    future. `fleetbus task cancel|respond ID` took the entry updated last, backend's: the
    admin's answer went to backend. Now several tasks with one id are named, and nothing is
    done until the role is given."""
    s = auth_fleet.spec.subjects
    asked = asyncio.Event()
    devops = agent(auth_fleet, "devops")

    @devops.on_task
    async def rotate(task: Task) -> object:
        asked.set()
        return await task.request_input({"question": "the new password?"}, timeout=30)

    async with devops, client(auth_fleet, "cto") as cto:
        handle = await cto.assign("devops", {"title": "rotate"})
        async with asyncio.timeout(15):
            await asked.wait()
        pinned = {"state": "input-required", "created": "2026-01-01T00:00:00Z",
                  "updated": "9999-12-31T23:59:59Z"}  # fmt: skip
        await publish(auth_fleet, "backend", s.task_index("backend", "cto", handle.id), pinned)
        request = {"task_id": handle.id, "state": "input-required", "agent": "backend",
                   "attempt": 1, "time": "9999-12-31T23:59:59Z", "request": "r1"}  # fmt: skip
        await publish(
            auth_fleet, "backend", s.task(handle.id, "updates", "cto", "backend"), request
        )

        code, out, err = await fleetbus(
            auth_fleet, tmp_path, "task", "respond", handle.id, '{"password": "s"}'
        )
        assert code != 0 and b"answered" not in out
        assert "2 tasks have the id" in err and "backend (from cto)" in err, err
        code, out, err = await fleetbus(
            auth_fleet, tmp_path, "task", "respond", handle.id, '{"password": "s"}',
            "--role", "devops",
        )  # fmt: skip
        assert code == 0, err
        assert await handle.result(timeout=15) == {"password": "s"}

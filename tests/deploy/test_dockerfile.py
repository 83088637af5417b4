"""The repository's Dockerfile, without a docker engine: it is read as docker reads it, and
what it copies is built into a wheel the way its ``pip install .`` would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fleetbus import __version__
from fleetbus.deploy.images import FLEETBUS_IMAGE

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return out


def test_it_builds_on_python_3_11_slim() -> None:
    assert instructions()[0] == ("FROM", "python:3.11-slim")


def test_it_installs_fleetbus_from_the_source_tree() -> None:
    steps = instructions()
    copies = [args.split() for kind, args in steps if kind == "COPY"]
    assert ["pyproject.toml", "README.md", "./"] in copies
    assert ["src", "./src"] in copies
    assert any(kind == "RUN" and args.startswith("pip install . ") for kind, args in steps)


def test_it_runs_as_a_user_that_is_not_root() -> None:
    users = [args for kind, args in instructions() if kind == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(kind == "RUN" and f"--uid {user}" in args for kind, args in instructions())


def test_its_entrypoint_is_the_fleetbus_command() -> None:
    entrypoints = [args for kind, args in instructions() if kind == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["fleetbus"]]


def test_the_image_name_deployments_use_is_what_the_dockerfile_builds() -> None:
    assert f"fleetbus:{__version__}" == FLEETBUS_IMAGE
    assert f"docker build -t {FLEETBUS_IMAGE} ." in (ROOT / "Dockerfile").read_text()


@pytest.mark.slow
def test_what_it_copies_builds_fleetbus_with_its_command(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for kind, args in instructions():
        if kind != "COPY":
            continue
        *sources, _ = args.split()
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, context / source)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("fleetbus-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"fleetbus-{__version__}.dist-info/entry_points.txt").decode()
    assert {"fleetbus/cli/__init__.py", "fleetbus/deploy/compose.py", "fleetbus/py.typed"} <= names
    assert "fleetbus = fleetbus.cli:main" in entry_points

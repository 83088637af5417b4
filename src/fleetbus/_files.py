"""Files fleetbus writes: atomically (a temporary name beside, then a rename, so a symlink at
the path is replaced, never followed into a file someone else chose), and the private ones
(credentials, the server's config, keys) 0600 from the first byte."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["write_file", "write_private"]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600)."""
    _write(path, text, 0o600)


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, with the umask's mode (as ``open`` would)."""
    _write(path, text, 0o666)


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise

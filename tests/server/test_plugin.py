"""The public pytest plugin, as a user's project sees it: a pytest run in a fresh directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_TESTS = """
import nats

def test_without_a_server():
    assert True

async def _account(url):
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().account_info()
    finally:
        await nc.close()

def test_with_a_server(nats_url):
    import asyncio
    assert asyncio.run(_account(nats_url)) is not None
"""


def _pytest(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_plugin_gives_users_a_server(tmp_path: Path) -> None:
    result = _pytest(tmp_path, dict(os.environ))
    assert "2 passed" in result.stdout, result.stdout + result.stderr


def test_a_missing_server_fails_only_the_tests_that_use_it(tmp_path: Path) -> None:
    env = dict(os.environ, NATS_SERVER_BIN=str(tmp_path / "no-such-nats-server"))
    result = _pytest(tmp_path, env)
    assert "1 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "NATS_SERVER_BIN=" in result.stdout
    assert "does not exist" in result.stdout

"""Who may use the dashboard: the token off loopback, loopback names on loopback, actions
only from the dashboard's own pages. Plain HTTP, no browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleetbus.dashboard import Dashboard, is_loopback, open_dashboard
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.testing.fleets import FleetUnderTest

from .support import http_get

TOKEN = "s3cret-token-for-the-test"


@pytest.fixture
async def guarded(fleet: FleetUnderTest) -> AsyncIterator[Dashboard]:
    """A dashboard with its access token (as `fleetbus dashboard` always serves it)."""
    conn = await connect(ConnectSettings.from_url(fleet.url))
    try:
        async with open_dashboard(conn, fleet.spec, port=0, token=TOKEN) as served:
            yield served
    finally:
        await conn.close()


def test_only_loopback_binds_go_without_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]")
    assert is_loopback("localhost") and is_loopback("127.0.0.2")
    for host in ("0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "dashboard.example.com"):
        assert not is_loopback(host), host


async def test_the_access_token_is_required_on_every_request(guarded: Dashboard) -> None:
    url = guarded.url
    for path in ("", "tasks", "static/dashboard.js", "api/overview", "api/dead-letters"):
        assert (await http_get(url + path)).status == 401, path
    stream = await http_get(url + "api/live/overview", read=False)
    assert stream.status == 401  # the live streams too: no side door
    wrong = await http_get(url + "api/overview", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    bearer = await http_get(url + "api/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status == 200 and b'"roles"' in bearer.body
    rebound = {"Authorization": f"Bearer {TOKEN}", "Host": "attacker.example:8765"}
    assert (await http_get(url + "api/overview", headers=rebound)).status == 403  # on loopback


async def test_the_token_in_the_address_becomes_a_cookie(guarded: Dashboard) -> None:
    first = await http_get(f"{guarded.url}tasks?state=active&token={TOKEN}")
    assert first.status == 303
    assert first.headers["location"] == "/tasks?state=active"  # the token leaves the address
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    then = await http_get(guarded.url + "tasks", headers={"Cookie": cookie.split(";")[0]})
    assert then.status == 200 and b"<h1>Tasks</h1>" in then.body
    live = await http_get(
        guarded.url + "api/live/tasks", headers={"Cookie": cookie.split(";")[0]}, read=False
    )
    assert live.status == 200 and live.headers["content-type"].startswith("text/event-stream")


async def test_a_loopback_dashboard_answers_only_its_own_names(dashboard: Dashboard) -> None:
    assert dashboard.token is None
    assert (await http_get(dashboard.url)).status == 200
    rebound = await http_get(dashboard.url, headers={"Host": "attacker.example:8765"})
    assert rebound.status == 403  # a page whose DNS name was pointed at 127.0.0.1


async def test_actions_come_only_from_the_dashboards_pages(dashboard: Dashboard) -> None:
    purge = dashboard.url + "api/dead-letters/purge"
    assert (await http_get(purge, method="POST")).status == 403  # a form on another site
    other_site = {"x-fleetbus-dashboard": "1", "Origin": "http://attacker.example"}
    assert (await http_get(purge, method="POST", headers=other_site)).status == 403
    own = {"x-fleetbus-dashboard": "1", "Origin": dashboard.url.rstrip("/")}
    answer = await http_get(purge, method="POST", headers=own)
    assert answer.status == 200 and answer.body == b'{"purged":0}'


async def test_every_answer_carries_a_strict_content_security_policy(dashboard: Dashboard) -> None:
    answer = await http_get(dashboard.url)
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"

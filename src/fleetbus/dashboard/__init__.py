"""``fleetbus dashboard``: the fleet as a live web page — roles and agents, tasks and their
progress, dead letters (replay, purge), streams and consumers, meetings, live traffic.

Starlette and uvicorn serve plain HTML and one script; server-sent events keep each page
current. Needs the extra: ``pip install 'fleetbus[dashboard]'``.

    async with open_dashboard(conn, spec, port=0) as dashboard:
        print(dashboard.address)

``data`` is the one module that reads the fleet (or acts on it); ``live`` keeps the state the
pages show and pushes what changes; ``app`` is the pages, streams and actions; ``guard`` who
may use them; ``server`` runs it all.
"""

from fleetbus.dashboard.guard import is_loopback, new_token
from fleetbus.dashboard.server import DEFAULT_PORT, Dashboard, open_dashboard, serve

__all__ = ["DEFAULT_PORT", "Dashboard", "is_loopback", "new_token", "open_dashboard", "serve"]

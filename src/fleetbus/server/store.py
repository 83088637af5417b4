"""Which account's directory of the JetStream store holds the streams.

nats-server keeps an account's streams under ``<store_dir>/jetstream/<account>/``. fleetbus's
config keeps them in the global account ``$G`` with auth off, and in ``STREAMS`` with auth on
(``fleetbus.security.render``); a store written before the streams had an account of their own
has them in ``$G`` with auth on too. Before a server starts, its streams go where its config
will look for them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fleetbus.errors import ServerError
from fleetbus.natsconf import GLOBAL_ACCOUNT, STREAMS_ACCOUNT

__all__ = ["keep_streams"]

_log = logging.getLogger("fleetbus.server")


def _has_streams(account_dir: Path) -> bool:
    streams = account_dir / "streams"
    return streams.is_dir() and any(streams.iterdir())


def keep_streams(store_dir: Path, account: str, *, clustered: bool) -> None:
    """Move the streams under the other account fleetbus uses to ``account``, when it has
    none. A cluster's meta layer names each stream's account, so a cluster node's streams
    are not moved: it refuses to start instead of starting without them."""
    store = store_dir / "jetstream"
    target = store / account
    others = [a for a in (GLOBAL_ACCOUNT, STREAMS_ACCOUNT) if a != account]
    others = [a for a in others if _has_streams(store / a)]
    if not others:
        return
    if _has_streams(target):
        for other in others:
            _log.warning(
                "%s holds streams of account %s too, which this server's config does not"
                " use (auth was turned on or off after both were provisioned): they are"
                " kept, unread; start the server as before to read them",
                store,
                other,
            )
        return
    other = others[0]
    if clustered or (store / "$SYS" / "_js_").exists():
        raise ServerError(
            f"the streams in {store} are kept in account {other}, and this server's"
            f" config keeps them in {account}: a cluster cannot move them. Start it as"
            " before (`--no-auth` for the global account), back the streams up"
            " (`nats stream backup`) and restore them into the new layout"
            " (docs/security.md)"
        )
    if target.exists():
        _remove_empty(target)  # made by a server that started with nothing to keep
    (store / other).rename(target)


def _remove_empty(account_dir: Path) -> None:
    """Remove ``account_dir`` if it holds directories only; else leave both alone."""
    paths = sorted(account_dir.rglob("*"), reverse=True)
    if any(not p.is_dir() for p in paths):
        raise ServerError(
            f"{account_dir} holds files but no stream: fleetbus does not know what they are,"
            " so it moves no stream over them"
        )
    for path in paths:
        path.rmdir()
    account_dir.rmdir()

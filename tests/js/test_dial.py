from __future__ import annotations

import socket
import ssl

import pytest
from nats.errors import NoServersError

from fleetbus.js.dial import failure, given_up, refused_login

VIOLATION = "nats: 'Authorization Violation'"
SLOW = "nats: 'Authorization Timeout'"
REFUSED = "[Errno 111] Connect call failed ('127.0.0.1', 1)"


def test_only_wrong_credentials_are_a_refused_login() -> None:
    assert refused_login(VIOLATION)
    # The server closing on a client too slow to log in (a loaded machine, a slow TLS
    # handshake) is worth the retries: it is not a refusal to give up on at once.
    assert not refused_login(SLOW)
    assert not refused_login("nats: 'Maximum Connections Exceeded'")


def test_only_what_waiting_will_not_change_ends_the_first_connection_early() -> None:
    assert given_up(Exception(VIOLATION))
    assert given_up(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)"))
    assert given_up(socket.gaierror(-2, "Name or service not known"))
    # localhost refusing on ::1 and on 127.0.0.1: asyncio joins the two into a plain OSError
    assert given_up(OSError(f"Multiple exceptions: {REFUSED}, {REFUSED}"))
    # taken and dropped (a server restarting, or at its connection limit): worth a retry
    assert not given_up(ConnectionResetError(104, "Connection reset by peer"))
    # a slow network, a slow login, a TLS failure: tried until the connect timeout
    assert not given_up(TimeoutError())
    assert not given_up(Exception(SLOW))
    assert not given_up(ssl.SSLCertVerificationError("CERTIFICATE_VERIFY_FAILED"))


@pytest.mark.parametrize(
    ("refused", "errors", "says"),
    [
        (True, [VIOLATION], "the server refused the login (nats: 'Authorization Violation')"),
        (True, [REFUSED, VIOLATION], "the server refused the login (nats: 'Authorization"),
        (True, [REFUSED], f"no server took the connection ({REFUSED}): is `fleetbus up` running"),
        (False, [VIOLATION, "reset"], "the server refused the login, tried for 5s"),
        (False, [SLOW], "no server answered within 5s (nats: 'Authorization Timeout')"),
        (False, [], "no server answered within 5s (is --server right?)"),
    ],
)
def test_a_failed_first_connection_says_why(refused: bool, errors: list[str], says: str) -> None:
    why = failure(TimeoutError(), errors, refused, 5.0)
    assert why.startswith(says)
    assert ("fleetbus creds" in why) == ("Violation" in why)  # what to do, for a refusal


def test_an_error_nats_py_gave_up_with_is_said_as_it_is() -> None:
    assert failure(OSError("connection reset"), [VIOLATION], True, 5.0) == "connection reset"
    assert failure(NoServersError(), [], False, 5.0).startswith("no server answered")

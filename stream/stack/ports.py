"""Free-port picking and port checks on the loopback interface."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Collection

from stream.stack.errors import StackError

LOOPBACK = "127.0.0.1"


def is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (we could bind it right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR like the JVM and redis do, so a port in TIME_WAIT still
        # counts as free and only a live listener counts as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def free_port(avoid: Collection[int] = ()) -> int:
    """A port the kernel just handed out for 127.0.0.1, not one of ``avoid``.

    The kernel may give the same port twice in a row once the probe socket is
    closed, hence ``avoid`` for several picks before any service has bound.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise StackError("could not find a free TCP port on 127.0.0.1")


def ensure_free(port: int, component: str) -> None:
    """Fail early, with the port in the message, when a fixed port is taken."""
    if not 0 < port < 65536:
        raise StackError(f"{component}: port {port} is not a valid TCP port")
    if not is_free(port):
        raise StackError(
            f"{component}: port {port} on {LOOPBACK} is already in use; "
            f"stop whatever listens there or let the stack pick a free port"
        )


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET ``url`` answers 200 (readiness probes of HTTP services)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def accepts_connections(port: int, timeout: float = 0.5) -> bool:
    """True when something listens on 127.0.0.1:port."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False

"""Reading what an HTTP endpoint answered, for the tests of /metrics, /healthz, /readyz."""

from __future__ import annotations

import urllib.error
import urllib.request


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of GET ``url``; an HTTP error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(exposition: str, series: str) -> float | None:
    """The value of one series (``name`` or ``name{labels}`` as exposed) in a /metrics page."""
    for line in exposition.splitlines():
        if line.startswith(f"{series} "):
            return float(line.split()[1])
    return None

"""Connection details of the stack, the env file, and where they come from."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stream.stack import procs, state
from stream.stack.errors import StackError

# Component → variable. The names are what the app and the tests read.
ENV_KEYS: dict[str, str] = {
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "registry": "SCHEMA_REGISTRY_URL",
    "redis": "REDIS_URL",
    "postgres": "POSTGRES_DSN",
    "prometheus": "PROMETHEUS_URL",
}
REQUIRED = ("kafka", "registry", "redis")


@dataclass(frozen=True)
class Endpoints:
    """How to reach each service.

    The three required fields are ``""`` only in what ``up()`` returns when
    that component was neither asked for nor already running, and in what
    ``resolve_endpoints()`` returns for one its caller does not need and nothing
    names (Redis, for a publisher).
    """

    kafka_bootstrap: str
    schema_registry_url: str
    redis_url: str
    postgres_dsn: str | None = None
    prometheus_url: str | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> Endpoints:
        """From a component → endpoint mapping (missing ones empty/None)."""
        return cls(
            kafka_bootstrap=values.get("kafka", ""),
            schema_registry_url=values.get("registry", ""),
            redis_url=values.get("redis", ""),
            postgres_dsn=values.get("postgres"),
            prometheus_url=values.get("prometheus"),
        )

    def as_env(self) -> dict[str, str]:
        """Variable → value for the known (non-empty) endpoints only."""
        values = {
            "kafka": self.kafka_bootstrap,
            "registry": self.schema_registry_url,
            "redis": self.redis_url,
            "postgres": self.postgres_dsn,
            "prometheus": self.prometheus_url,
        }
        return {ENV_KEYS[name]: value for name, value in values.items() if value}


def env_file(state_dir: str | os.PathLike[str] | None = None) -> Path:
    return state.state_dir(state_dir) / state.ENV_FILE


def env_text(endpoints: Endpoints) -> str:
    """The env file's content: a comment, then ``KEY=value`` per known endpoint."""
    header = (
        "# Written by the local stack (stream.stack.up); rewritten on every up/down.\n"
        "# Export into a shell with: set -a; . .stack/env; set +a\n"
    )
    body = "".join(f"{key}={shlex.quote(value)}\n" for key, value in endpoints.as_env().items())
    return header + body


def write_env_file(path: Path, endpoints: Endpoints) -> None:
    if not endpoints.as_env():
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(env_text(endpoints))
    os.replace(tmp, path)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (optionally ``export``-prefixed, shell-quoted) → dict."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for lineno, raw_line in enumerate(path.read_text().splitlines(), 1):
        stripped = raw_line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assignment = stripped.removeprefix("export ").strip()
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise StackError(f"{path}:{lineno}: expected KEY=value, got {stripped!r}")
        try:
            parts = shlex.split(raw)
        except ValueError as exc:
            raise StackError(f"{path}:{lineno}: {exc}") from exc
        values[key.strip()] = " ".join(parts)
    return values


def resolve_endpoints(
    environ: Mapping[str, str] | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    needed: Iterable[str] = tuple(ENV_KEYS),
) -> Endpoints:
    """Endpoints for the app and the tests.

    Each variable set (non-empty) in ``environ`` (default: the process
    environment) wins over the same key of ``<state dir>/env``, one by one.
    Raises StackError when a required one is known from neither, or when a
    ``needed`` value would come from the env file of a stack whose process is
    gone. A gone component the caller does not need is left out (unknown): a
    processor does not stop for a Prometheus stopped a moment ago.
    """
    env = os.environ if environ is None else environ
    directory = state.state_dir(state_dir)
    from_file = read_env_file(directory / state.ENV_FILE)
    values: dict[str, str] = {}
    file_used: list[str] = []
    for component, key in ENV_KEYS.items():
        if env.get(key):
            values[component] = env[key]
        elif from_file.get(key):
            values[component] = from_file[key]
            file_used.append(component)
    # Of the required ones, those the caller needs: a platform service's publisher (Kafka
    # and the registry) must not be refused for want of a REDIS_URL it never uses.
    missing = [ENV_KEYS[c] for c in REQUIRED if c in set(needed) and c not in values]
    if missing:
        raise StackError(
            f"no {', '.join(missing)} known: run `make up` (starts the local stack, "
            f"writes {directory / state.ENV_FILE}) or set {' and '.join(missing)}"
        )
    records = state.load(directory)
    # Only components the stack recorded: a hand-written env file is trusted.
    gone = {c for c in file_used if c in records and not procs.is_alive(records[c].ref)}
    wanted = set(needed)
    stale = [c for c in file_used if c in gone & wanted]
    # A gone component the caller does not need is left out, but for the required ones,
    # which Endpoints always carries: their last address stays (a command that reads only
    # Kafka runs while the stack's Redis is down; a sink of Redis needs it, and says so).
    for component in gone - wanted - set(REQUIRED):
        del values[component]
    if stale:
        raise StackError(
            f"{directory / state.ENV_FILE} names {', '.join(stale)} but that process is not "
            f"running any more: run `make up` again or set {ENV_KEYS[stale[0]]}"
        )
    return Endpoints.from_values(values)

"""The state dir: ``stack.json`` (what runs), ``env`` (how to reach it), a lock.

Layout of ``$RATING_STACK_DIR`` (default ``<repo>/.stack``)::

    stack.json            pid, start time, ports, data dir of each component
    env                   KEY=value lines, for `source` and resolve_endpoints()
    logs/<component>.log  stdout+stderr of the current run (.log.1: previous)
    <component>/          data of the running service, removed by down()
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stream.stack.errors import StackError
from stream.stack.service import Record

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = "stack.json"
ENV_FILE = "env"


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$RATING_STACK_DIR``, else ``<repo>/.stack`` (absolute)."""
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    configured = os.environ.get("RATING_STACK_DIR")
    return Path(configured).expanduser().resolve() if configured else REPO_ROOT / ".stack"


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Serialise up/down on one state dir (parallel test sessions, two terminals)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load(directory: Path) -> dict[str, Record]:
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {name: Record.from_json(rec) for name, rec in raw["components"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(
            f"{path} is unreadable ({exc}); stop any leftover service by hand and delete it"
        ) from exc


def save(directory: Path, records: dict[str, Record]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    if not records:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    body = {"components": {name: rec.to_json() for name, rec in records.items()}}
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    # Atomic, so a crash mid-write never loses the pids of running services.
    os.replace(tmp, path)

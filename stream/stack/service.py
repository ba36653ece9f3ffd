"""What every local service looks like to the manager, and the state record."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from stream.stack.errors import StackError
from stream.stack.procs import ProcessRef


def say(message: str) -> None:
    """Progress for a person: stderr, so stdout stays clean for `rating stack env`."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Context:
    """Where a service keeps its state (per stack) and its downloads (shared)."""

    state_dir: Path
    cache_dir: Path
    quiet: bool = False

    def data_dir(self, component: str) -> Path:
        return self.state_dir / component

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    def say(self, message: str) -> None:
        if not self.quiet:
            say(message)


@dataclass
class Record:
    """One running service as written to ``stack.json``."""

    component: str
    pid: int
    start_ticks: int | None
    port: int
    endpoint: str
    data_dir: str
    log: str
    extra_ports: dict[str, int] = field(default_factory=dict)

    @property
    def ref(self) -> ProcessRef:
        return ProcessRef(self.pid, self.start_ticks)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Record:
        return cls(
            component=str(raw["component"]),
            pid=int(raw["pid"]),
            start_ticks=None if raw.get("start_ticks") is None else int(raw["start_ticks"]),
            port=int(raw["port"]),
            endpoint=str(raw["endpoint"]),
            data_dir=str(raw["data_dir"]),
            log=str(raw["log"]),
            extra_ports={str(k): int(v) for k, v in dict(raw.get("extra_ports", {})).items()},
        )


PortPicker = Callable[[], int]


class Service(ABC):
    """One kind of local service. Subclasses are stateless; state lives in Records."""

    name: ClassVar[str]
    env_key: ClassVar[str]
    ready_timeout: ClassVar[float]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def prepare(self, ctx: Context) -> None:  # noqa: B027 - optional hook, no-op by default
        """Slow or failing-early work before anything is launched: tools, downloads."""

    @abstractmethod
    def launch(self, ctx: Context, port: int, pick_port: PortPicker) -> Record:
        """Start the process (without waiting for readiness) and describe it."""

    @abstractmethod
    def probe(self, record: Record) -> bool:
        """One quick readiness check; never raises."""

    def after_ready(self, ctx: Context, record: Record) -> None:  # noqa: B027 - optional hook
        """One-off setup that needs the service up (e.g. creating a database)."""


def find_tool(name: str, *fallbacks: str) -> str | None:
    """``name`` on PATH, else the first existing Debian location among ``fallbacks``."""
    found = shutil.which(name)
    if found:
        return found
    return next((f for f in fallbacks if os.access(f, os.X_OK)), None)


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java not found on PATH: Kafka and the schema registry need a Java 17+ "
            "runtime (Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java

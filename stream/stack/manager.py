"""up / down / status of the local stack recorded in one state dir."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stream.stack import downloads, procs, state
from stream.stack.endpoints import Endpoints, write_env_file
from stream.stack.errors import StackError
from stream.stack.kafka import KafkaService
from stream.stack.ports import ensure_free, free_port, is_free
from stream.stack.postgres import PostgresService
from stream.stack.prometheus import PrometheusService
from stream.stack.redis import RedisService
from stream.stack.registry import RegistryService
from stream.stack.service import Context, Record, Service

SERVICES: dict[str, Service] = {
    "kafka": KafkaService(),
    "registry": RegistryService(),
    "redis": RedisService(),
    "postgres": PostgresService(),
    "prometheus": PrometheusService(),
}
COMPONENTS = tuple(SERVICES)
DEFAULT_COMPONENTS = frozenset({"kafka", "registry", "redis"})
# The registry spawns at once and boots while Kafka's storage is formatted.
_LAUNCH_ORDER = ("registry", "kafka", "redis", "postgres", "prometheus")
# Every service here stops in about a second on SIGTERM/SIGINT; past this
# whatever is left is SIGKILLed (its data is thrown away anyway).
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    running: bool
    pid: int | None = None
    port: int | None = None
    endpoint: str | None = None
    log: str | None = None


def ordered_components(
    components: Iterable[str], order: Iterable[str] = _LAUNCH_ORDER
) -> list[str]:
    # A lone name is a str, itself an iterable of one-letter "components".
    wanted = {components} if isinstance(components, str) else set(components)
    unknown = wanted - set(SERVICES)
    if unknown:
        raise StackError(
            f"unknown component(s) {', '.join(sorted(unknown))}; known: {', '.join(COMPONENTS)}"
        )
    return [name for name in order if name in wanted]


def _removable(data_dir: Path, directory: Path) -> bool:
    # stack.json is data, not trusted: only ever delete what the stack creates.
    resolved = data_dir.resolve()
    if resolved.is_relative_to(directory) and resolved != directory:
        return True
    tmp = Path(tempfile.gettempdir()).resolve()
    return resolved.parent == tmp and resolved.name.startswith("usage-rating-")


def _stop(records: list[Record], directory: Path) -> None:
    procs.stop_all(
        [(rec.ref, SERVICES[rec.component].stop_signal) for rec in records], STOP_TIMEOUT_S
    )
    for rec in records:
        data_dir = Path(rec.data_dir)
        if _removable(data_dir, directory):
            shutil.rmtree(data_dir, ignore_errors=True)


def _write_env(directory: Path, records: Mapping[str, Record]) -> Endpoints:
    endpoints = Endpoints.from_values({name: rec.endpoint for name, rec in records.items()})
    write_env_file(directory / state.ENV_FILE, endpoints)
    return endpoints


def _await_ready(ctx: Context, launched: list[tuple[Record, float]]) -> None:
    """Poll all launched services in turn, so each one's ready time is its own."""
    pending = list(launched)
    while pending:
        for rec, started in list(pending):
            service = SERVICES[rec.component]
            if procs.check_ready(
                rec.component,
                rec.ref,
                Path(rec.log),
                functools.partial(service.probe, rec),
                deadline=started + service.ready_timeout,
            ):
                service.after_ready(ctx, rec)
                elapsed = time.monotonic() - started
                ctx.say(f"{rec.component}: ready on {rec.endpoint} in {elapsed:.1f} s")
                pending.remove((rec, started))
        if pending:
            time.sleep(0.2)


class _Ports:
    """Ports handed out during one up(): fixed ones, previous ones, fresh ones."""

    def __init__(self, fixed: Mapping[str, int], records: Mapping[str, Record]) -> None:
        self.fixed = dict(fixed)
        self.previous: dict[str, int] = {}
        self.taken = set(self.fixed.values())
        for rec in records.values():
            self.taken.update([rec.port, *rec.extra_ports.values()])

    def release(self, name: str, rec: Record) -> None:
        """``rec``'s process is gone: its ports may be handed out again, its main port
        first of all to its own restart (``main``)."""
        self.previous[name] = rec.port
        self.taken -= {rec.port, *rec.extra_ports.values()} - set(self.fixed.values())

    def pick(self) -> int:
        port = free_port(self.taken)
        self.taken.add(port)
        return port

    def main(self, name: str) -> int:
        if name in self.fixed:
            return self.fixed[name]
        # A restarted component gets its old port back when it is still free,
        # so shells that sourced the env file keep working.
        old = self.previous.get(name)
        if old is not None and old not in self.taken and is_free(old):
            self.taken.add(old)
            return old
        return self.pick()


def _triage(
    ctx: Context, wanted: list[str], records: dict[str, Record], ports: _Ports
) -> list[str]:
    """Which of ``wanted`` must start; dead or unhealthy records are cleared first."""
    to_start: list[str] = []
    for name in wanted:
        rec = records.get(name)
        if rec is not None:
            if procs.is_alive(rec.ref) and SERVICES[name].probe(rec):
                if ports.fixed.get(name, rec.port) != rec.port:
                    raise StackError(
                        f"{name} already runs on port {rec.port}, not {ports.fixed[name]}: "
                        f"stop it first (down)"
                    )
                ctx.say(f"{name}: already running on {rec.endpoint} (pid {rec.pid})")
                continue
            ctx.say(f"{name}: process {rec.pid} is gone or not answering; restarting it")
            _stop([rec], ctx.state_dir)
            ports.release(name, rec)
            del records[name]
            state.save(ctx.state_dir, records)
        to_start.append(name)
    return to_start


def up(
    components: Iterable[str] = DEFAULT_COMPONENTS,
    state_dir: str | os.PathLike[str] | None = None,
    *,
    ports: Mapping[str, int] | None = None,
    quiet: bool = False,
) -> Endpoints:
    """Start the missing or unhealthy ``components``; reuse healthy running ones.

    ``ports`` fixes the main port of some components (e.g. ``{"kafka": 9092}``);
    every other port is picked free at run time. Returns the endpoints of
    everything running in the state dir (also components not asked for) and
    writes them to ``<state dir>/env``. On any failure the services started by
    this call are stopped again and StackError says why.
    """
    directory = state.state_dir(state_dir)
    ctx = Context(directory, downloads.cache_dir(), quiet)
    wanted = ordered_components(components)
    fixed = {name: port for name, port in (ports or {}).items() if port}
    ordered_components(fixed)
    with state.locked(directory):
        records = state.load(directory)
        plan = _Ports(fixed, records)
        to_start = _triage(ctx, wanted, records, plan)
        for name in to_start:
            if name in fixed:
                ensure_free(fixed[name], name)
        for name in to_start:
            SERVICES[name].prepare(ctx)
        launched: list[tuple[Record, float]] = []
        try:
            for name in to_start:
                started = time.monotonic()
                ctx.data_dir(name).mkdir(parents=True, exist_ok=True)
                rec = SERVICES[name].launch(ctx, plan.main(name), plan.pick)
                records[name] = rec
                state.save(directory, records)
                launched.append((rec, started))
            _await_ready(ctx, launched)
        except BaseException:
            _stop([rec for rec, _ in launched], directory)
            for rec, _ in launched:
                records.pop(rec.component, None)
            state.save(directory, records)
            _write_env(directory, records)
            raise
        return _write_env(directory, records)


def down(
    components: Iterable[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    *,
    quiet: bool = False,
) -> None:
    """Stop ``components`` (default: all) and delete their data. Safe to repeat."""
    directory = state.state_dir(state_dir)
    ctx = Context(directory, downloads.cache_dir(), quiet)
    names = ordered_components(
        COMPONENTS if components is None else components, reversed(_LAUNCH_ORDER)
    )
    if not directory.exists():
        return
    with state.locked(directory):
        records = state.load(directory)
        targets = [records[name] for name in names if name in records]
        if targets:
            ctx.say(f"stopping {', '.join(rec.component for rec in targets)}…")
            _stop(targets, directory)
            for rec in targets:
                del records[rec.component]
        # Leftovers of a start that crashed before it was recorded.
        for name in names:
            if name not in records and ctx.data_dir(name).is_dir():
                shutil.rmtree(ctx.data_dir(name), ignore_errors=True)
        state.save(directory, records)
        _write_env(directory, records)


def is_running(
    components: Iterable[str] = DEFAULT_COMPONENTS,
    state_dir: str | os.PathLike[str] | None = None,
) -> bool:
    """True when every one of ``components`` has a live process in the state dir."""
    current = status(state_dir)
    return all(current[name].running for name in ordered_components(components))


def status_lines(state_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """``status()`` as aligned lines for a terminal."""
    lines = []
    for item in status(state_dir).values():
        if item.pid is None:
            lines.append(f"{item.component:<11} stopped")
        else:
            state_word = "running" if item.running else "dead"
            lines.append(
                f"{item.component:<11} {state_word:<8} pid {item.pid:<8} "
                f"port {item.port:<6} {item.endpoint}"
            )
    return lines


def status(state_dir: str | os.PathLike[str] | None = None) -> dict[str, ComponentStatus]:
    """Every known component, running or stopped (liveness only, no health probe)."""
    directory = state.state_dir(state_dir)
    records = state.load(directory)
    result: dict[str, ComponentStatus] = {}
    for name in COMPONENTS:
        rec = records.get(name)
        if rec is None:
            result[name] = ComponentStatus(name, running=False)
        else:
            result[name] = ComponentStatus(
                name,
                running=procs.is_alive(rec.ref),
                pid=rec.pid,
                port=rec.port,
                endpoint=rec.endpoint,
                log=rec.log,
            )
    return result

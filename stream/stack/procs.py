"""Detached service processes: spawn, liveness, readiness wait, stop, log tail.

Processes outlive the Python process that started them (``make up`` returns
while Kafka keeps running), so everything here works from a pid plus the
process start time recorded in the state file, not from Popen objects.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stream.stack.errors import StackError

TAIL_LINES = 30

# Popen objects of the children of this very process. Kept so that they are
# reaped once dead (a zombie still answers kill(pid, 0)) and so that Python does
# not warn about still-running subprocesses when the objects are collected.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRef:
    """A pid plus its start time, so a recycled pid is never mistaken for ours."""

    pid: int
    start_ticks: int | None


def _rotate(log_path: Path) -> None:
    # One previous run is kept for post-mortems; the tail shown in errors must
    # come from the current run only.
    if log_path.exists():
        log_path.replace(log_path.with_name(log_path.name + ".1"))


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> ProcessRef:
    """Start ``argv`` in its own session with stdout and stderr going to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _rotate(log_path)
    run_env = dict(os.environ if env is None else env)
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=run_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in the terminal that ran `make up` must
                # not reach the services, and the pgid lets stop() get helpers.
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user is not None else None,
            )
        except OSError as exc:
            raise StackError(f"cannot start {argv[0]}: {exc}") from exc
    _CHILDREN[proc.pid] = proc
    return ProcessRef(proc.pid, start_ticks(proc.pid))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may contain spaces; fields follow the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None where /proc is absent)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        del _CHILDREN[pid]


def exit_code(pid: int) -> int | None:
    """Exit status when ``pid`` was our child and has ended, else None."""
    proc = _CHILDREN.get(pid)
    return proc.poll() if proc is not None else None


def is_alive(ref: ProcessRef) -> bool:
    _reap(ref.pid)
    if Path("/proc").is_dir():
        fields = _stat_fields(ref.pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return ref.start_ticks is None or start_ticks(ref.pid) == ref.start_ticks
    try:
        os.kill(ref.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_all(targets: Sequence[tuple[ProcessRef, signal.Signals]], timeout: float) -> None:
    """Ask every process to stop, wait up to ``timeout`` in total, then SIGKILL.

    All are signalled first so their shutdowns overlap instead of adding up.
    """
    live = [(ref, sig) for ref, sig in targets if is_alive(ref)]
    pending = list(live)
    for ref, sig in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, sig)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
        pending = [(ref, sig) for ref, sig in pending if is_alive(ref)]
    for ref, _ in pending:
        _signal_group(ref.pid, signal.SIGKILL)
    for ref, _ in live:
        # Helpers (postgres backends, forked children) share the leader's pgid.
        # Only groups we saw alive: a dead pid's number may belong to a stranger.
        _signal_group(ref.pid, signal.SIGKILL)
    for ref, _ in targets:
        proc = _CHILDREN.pop(ref.pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    kill_deadline = time.monotonic() + 5
    while any(is_alive(ref) for ref, _ in targets) and time.monotonic() < kill_deadline:
        time.sleep(0.05)


def tail(log_path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {log_path})"
    picked = text.splitlines()[-lines:]
    return "\n".join(picked) if picked else f"(empty log {log_path})"


def check_ready(
    component: str,
    ref: ProcessRef,
    log_path: Path,
    probe: Callable[[], bool],
    *,
    deadline: float,
) -> bool:
    """One readiness poll: True when ``probe`` says yes, False to poll again.

    Raises StackError with the log tail when the process has died or
    ``deadline`` (a time.monotonic() value) has passed.
    """
    if not is_alive(ref):
        code = exit_code(ref.pid)
        how = f"exited with status {code}" if code is not None else "exited"
        raise StackError(
            f"{component} {how} during start-up (pid {ref.pid}); "
            f"last lines of {log_path}:\n{tail(log_path)}"
        )
    if probe():
        return True
    if time.monotonic() > deadline:
        raise StackError(
            f"{component} not ready in time (pid {ref.pid} still running); "
            f"last lines of {log_path}:\n{tail(log_path)}"
        )
    return False

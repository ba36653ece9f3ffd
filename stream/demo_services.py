"""The demo's long-running parts: `rating process` and the sinks, each a child process
whose output goes to a log file in the stack's logs folder."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from processors.errors import RatingError
from stream import stack as local_stack
from stream.lag import caught_up_at
from stream.progress import Progress
from stream.readback import end_offsets
from stream.settings import Connections

STOP_TIMEOUT_S = 30.0


class Child:
    """One `rating ...` subprocess (same interpreter, same settings file)."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path):
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @classmethod
    def start(cls, name: str, log_name: str, settings_file: Path,
              args: Sequence[str]) -> Child:
        log_dir = local_stack.state_dir() / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / log_name
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "--settings", str(settings_file), *args],
                stdout=log, stderr=subprocess.STDOUT)
        return cls(name, popen, log_path)

    def check(self) -> None:
        """RatingError naming the log file when the child has exited."""
        if self.popen.poll() is not None:
            raise RatingError(f"the {self.name} exited with {self.popen.returncode}; "
                              f"see {self.log_path}")


def stop_all(children: Iterable[Child]) -> None:
    """SIGTERM to every child at once (each finishes its batch), then wait; kill stragglers."""
    running = [child for child in children if child.popen.poll() is None]
    for child in running:
        child.popen.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in running:
        try:
            child.popen.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.popen.kill()
            child.popen.wait(10)


def wait_for_sink(label: str, sink: Child, connections: Connections, topic: str,
                  stored_offsets: Callable[[], Mapping[int, int]], since: Mapping[int, int],
                  timeout_s: float) -> float:
    """Show the sink's progress on ``topic`` (from ``since``) until its store's offsets leave
    no committed record unread (stream/lag.py: offsets alone would count commit markers);
    the seconds taken."""
    ends = end_offsets(connections, topic)
    progress = Progress(label, sum(max(0, end - since.get(p, 0)) for p, end in ends.items()))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sink.check()
        stored = stored_offsets()
        if caught_up_at(connections, topic, stored):
            return progress.finish("caught up")
        progress.update(sum(max(0, min(stored.get(p, 0), end) - since.get(p, 0))
                            for p, end in ends.items()))
        time.sleep(0.3)
    raise RatingError(f"the {sink.name} did not store everything on {topic} within "
                      f"{timeout_s:.0f} s; see {sink.log_path}")

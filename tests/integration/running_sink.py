"""A sink's run function in a thread of the test process (so its metrics are this
process's), and waiting for what it stores without missing that it died."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

Errors = tuple[type[Exception], ...]


def wait_until(condition: Callable[[], bool], what: str, check: Callable[[], None], *,
               timeout_s: float = 90.0, interval_s: float = 0.2,
               transient: Errors = ()) -> None:
    """Poll ``condition`` until it holds. ``check`` runs before each poll and raises when
    whatever should make the condition true has failed. A ``transient`` error from the
    condition (its store is down on purpose) counts as not yet."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check()
        try:
            if condition():
                return
        except transient:
            pass
        time.sleep(interval_s)
    check()  # a failure in the last interval explains the timeout better than the timeout
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class RunningSink:
    """``run(stop_event)`` in a daemon thread until :meth:`stop`; also a context manager.

    What ``run`` raised is re-raised, as an AssertionError naming the sink, by
    :meth:`check`, :meth:`wait_until` and :meth:`stop`; ``error`` holds it as raised.
    ``transient``: errors the conditions of :meth:`wait_until` may raise while the
    sink's store is down on purpose."""

    def __init__(self, name: str, run: Callable[[threading.Event], object], *,
                 transient: Errors = ()):
        self.name = name
        self.transient = transient
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(run,), name=name, daemon=True)
        self.thread.start()

    def _run(self, run: Callable[[threading.Event], object]) -> None:
        try:
            run(self.stop_event)
        except BaseException as exc:
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"{self.name} sink failed: {self.error!r}") from self.error

    def check_running(self) -> None:
        """As :meth:`check`, and the sink must not have returned unless asked to stop."""
        ended = not self.thread.is_alive()  # read first: once ended, ``error`` is final
        self.check()
        if ended and not self.stop_event.is_set():
            raise AssertionError(f"{self.name} sink returned without error before its stop")

    def wait_until(self, condition: Callable[[], bool], what: str, *,
                   timeout_s: float = 90.0) -> None:
        wait_until(condition, what, self.check_running, timeout_s=timeout_s,
                   transient=self.transient)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), f"{self.name} sink did not stop"
        self.check()

    def __enter__(self) -> RunningSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

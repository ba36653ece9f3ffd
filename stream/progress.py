"""A dependency-free progress bar on stderr (plain lines when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr, width: int = 30):
        self._label = label
        self._total = max(total, 1)
        self._stream = stream
        self._width = width
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._tty = stream.isatty()
        self._last_decile = -1

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if self._tty:
            if now - self._last_draw < 0.1 and done < self._total:
                return
            self._last_draw = now
            filled = int(self._width * min(done, self._total) / self._total)
            bar = "#" * filled + "-" * (self._width - filled)
            rate = done / max(now - self._started, 1e-9)
            self._stream.write(f"\r{self._label} [{bar}] {done}/{self._total} "
                               f"{rate:,.0f}/s {note}   ")
        else:
            decile = 10 * done // self._total
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self._stream.write(f"{self._label}: {done}/{self._total} {note}\n")
        self._stream.flush()

    def finish(self, note: str = "") -> float:
        elapsed = time.monotonic() - self._started
        self.update(self._total, note)
        if self._tty:
            self._stream.write("\n")
        self._stream.flush()
        return elapsed

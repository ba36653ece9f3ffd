"""A cProfile look at the rating loop: where one event's time goes.

Run on its own lane after the timed runs (the profiler slows everything
down, so its run is never one of the measured ones).
"""

from __future__ import annotations

import cProfile
import pstats
from pathlib import Path
from typing import Any

from bench.inprocess import time_processor
from bench.lanes import Lane
from bench.workload import Expected


def profile_rating(lane: Lane, expected: Expected, limit_s: float, path: Path,
                   top: int = 15) -> list[dict[str, Any]]:
    """Profile router+rater over the lane's input; the ``top`` functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        time_processor(lane, ("router", "rater"), expected.events + expected.routed, limit_s)
    finally:
        profiler.disable()
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path))
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2],  # type: ignore[attr-defined]
                  reverse=True)[:top]
    return [{"function": f"{Path(file).name}:{line}({name})", "calls": calls,
             "own_s": round(own, 3), "own_share": round(own / total, 3) if total else 0.0,
             "cumulative_s": round(cumulative, 3)}
            for (file, line, name), (_, calls, own, cumulative, _) in rows]

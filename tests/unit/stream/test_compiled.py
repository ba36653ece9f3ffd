"""The hot path runs compiled (mypyc), and the compiled engine writes exactly the bytes
the pure-Python one does."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from stream.compiled import COMPILED_MODULES, compile_requested, engine_build, source_files

ROOT = Path(__file__).resolve().parents[3]


def _digest(*launcher: str) -> tuple[str, int, str]:
    """The offline rating lane's output digest over workload and odd-case records."""
    command = [sys.executable, "-m", *launcher, "bench.offline", "--events", "1500",
               "--edge-cases", "--lanes", "", "--repeat", "1", "--digest"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(r"digest ([0-9a-f]{64}) over (\d+) outputs", done.stdout)
    assert found, done.stdout
    return found.group(1), int(found.group(2)), done.stderr


def test_every_compiled_module_is_a_source_file() -> None:
    missing = [str(path) for path in source_files(ROOT) if not path.exists()]
    assert not missing
    assert len(set(COMPILED_MODULES)) == len(COMPILED_MODULES)


@pytest.mark.skipif(not compile_requested(), reason="RATING_COMPILE=0: a pure-Python build")
def test_hot_path_runs_compiled_and_up_to_date() -> None:
    build = engine_build()
    assert build.fully_compiled, f"run `make compile`: {build.describe()}"
    assert not build.stale, build.describe()


# Records built for every event. Each writes its own __init__ so that mypyc compiles
# it: the one @dataclass generates stays interpreted Python, about ten times the cost.
PER_EVENT_RECORDS = (
    "processors.events.UsageEvent", "processors.events.RatedUsage", "processors.events.Origin",
    "processors.events.TierCharge", "processors.pipeline.EventOutcome",
    "processors.state.StateChange", "processors.quota.model.QuotaDecision",
    "processors.quota.model.QuotaChange", "processors.catalog.pricing.Charge",
    "processors.rating.Rated", "processors.rating.Skipped", "processors.rating._Located",
    "processors.rating._Credit", "processors.rating._Priced", "processors.dedup.SeenEvent",
    "stream.messages.Output",
)


@pytest.mark.skipif(not compile_requested(), reason="RATING_COMPILE=0: a pure-Python build")
@pytest.mark.parametrize("path", PER_EVENT_RECORDS)
def test_per_event_records_are_built_by_compiled_code(path: str) -> None:
    module_name, _, class_name = path.rpartition(".")
    record = getattr(importlib.import_module(module_name), class_name)
    assert not isinstance(record.__init__, types.FunctionType), (
        f"{path}.__init__ is interpreted Python: give it its own __init__ (init=False)")


def test_compiled_and_pure_python_engines_write_the_same_bytes() -> None:
    compiled_digest, compiled_outputs, _ = _digest()
    pure_digest, pure_outputs, pure_log = _digest("bench.pure_python")
    assert "engine: pure Python" in pure_log
    # The odd cases reach every outcome: rated, rejected, dead letters, late, changelog.
    assert compiled_outputs > 4000
    assert (pure_digest, pure_outputs) == (compiled_digest, compiled_outputs)


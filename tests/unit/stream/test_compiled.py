"""The hot path runs compiled (mypyc), and the compiled engine writes exactly the bytes
the pure-Python one does."""

from __future__ import annotations

import re
import subprocess
import sys
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


def test_compiled_and_pure_python_engines_write_the_same_bytes() -> None:
    compiled_digest, compiled_outputs, _ = _digest()
    pure_digest, pure_outputs, pure_log = _digest("bench.pure_python")
    assert "engine: pure Python" in pure_log
    # The odd cases reach every outcome: rated, rejected, dead letters, late, changelog.
    assert compiled_outputs > 4000
    assert (pure_digest, pure_outputs) == (compiled_digest, compiled_outputs)


"""Which modules of the hot path are compiled to C by mypyc, and whether they are loaded.

The per-event path (decode, dedup, quota, rating, encode, state) is plain typed
Python that mypyc compiles into C extension modules at install time (``setup.py``;
``make compile`` in a checkout). The compiled modules replace the ``.py`` files of
the same name on import; the source stays the reference, and the pure-Python code
is the same code, about 2x slower per event (``bench/README.md``).

This module is read by ``setup.py`` with ``runpy`` before the package is
installed, so it must import only the standard library.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# The modules mypyc compiles: everything a rated event goes through, and nothing
# that does I/O, uses the Kafka client's types at run time or is patched by tests.
COMPILED_MODULES: tuple[str, ...] = (
    "processors.accounts",
    "processors.catalog.matching",
    "processors.catalog.model",
    "processors.catalog.pricing",
    "processors.catalog.resolve",
    "processors.dedup",
    "processors.errors",
    "processors.events",
    "processors.lookups",
    "processors.money",
    "processors.pipeline",
    "processors.quota.alerts",
    "processors.quota.check",
    "processors.quota.model",
    "processors.quota.state",
    "processors.rating",
    "processors.state",
    "stream.avro_binary",
    "stream.codec",
    "stream.messages",
    "stream.stages",
    "stream.state_store",
)

# The name of the shared library mypyc puts the compiled code in (inside ``stream/``,
# so an installed package finds it wherever the process starts).
SHARED_LIBRARY = "stream._native"

# Written beside this module by the build: the SHA-256 of each compiled module's
# source, so a process can tell whether its compiled code is older than its source.
MANIFEST = "compiled_sources.json"

# Set to build and run without compiling (``RATING_COMPILE=0 pip install .``).
COMPILE_SWITCH = "RATING_COMPILE"


def source_files(root: Path) -> list[Path]:
    """The ``.py`` files of the compiled modules under a source tree ``root``."""
    return [root.joinpath(*name.split(".")).with_suffix(".py") for name in COMPILED_MODULES]


def source_digests(root: Path) -> dict[str, str]:
    """SHA-256 of each compiled module's source under ``root`` (what MANIFEST holds)."""
    return {name: hashlib.sha256(path.read_bytes()).hexdigest()
            for name, path in zip(COMPILED_MODULES, source_files(root), strict=True)}


def compile_requested() -> bool:
    """False when ``RATING_COMPILE`` is ``0``, ``false`` or ``no``: build pure Python."""
    return os.environ.get(COMPILE_SWITCH, "1").strip().lower() not in {"0", "false", "no"}


@dataclass(frozen=True)
class EngineBuild:
    """How the hot path is running in this process."""

    compiled: tuple[str, ...]
    interpreted: tuple[str, ...]
    stale: tuple[str, ...]

    @property
    def fully_compiled(self) -> bool:
        return not self.interpreted

    def describe(self) -> str:
        if not self.compiled:
            return (f"pure Python: none of the {len(self.interpreted)} hot-path modules is "
                    "compiled (make compile, or pip install without RATING_COMPILE=0)")
        text = (f"compiled by mypyc: {len(self.compiled)} of {len(COMPILED_MODULES)} "
                "hot-path modules")
        if self.interpreted:
            text += f"; interpreted: {', '.join(self.interpreted)}"
        if self.stale:
            text += (f"; BUILT FROM ANOTHER SOURCE THAN THE .py NOW (the old compiled code runs, "
                     f"run make compile): {', '.join(self.stale)}")
        return text


def _is_extension(path: str | None) -> bool:
    return path is not None and path.endswith((".so", ".pyd"))


def _built_digests() -> dict[str, str]:
    manifest = Path(__file__).with_name(MANIFEST)
    if not manifest.exists():
        return {}
    loaded = json.loads(manifest.read_text(encoding="utf-8"))
    return {str(name): str(digest) for name, digest in loaded.items()}


def engine_build() -> EngineBuild:
    """Import the hot-path modules and tell which are compiled extensions, and which
    compiled ones were built from another source than the ``.py`` beside them now
    (edited since ``make compile``; the build's MANIFEST tells)."""
    compiled: list[str] = []
    interpreted: list[str] = []
    for name in COMPILED_MODULES:
        module = importlib.import_module(name)
        if _is_extension(getattr(module, "__file__", None)):
            compiled.append(name)
        else:
            interpreted.append(name)
    built = _built_digests()
    now = source_digests(Path(__file__).resolve().parent.parent) if built else {}
    stale = tuple(name for name in compiled if built and built.get(name) != now.get(name))
    return EngineBuild(tuple(compiled), tuple(interpreted), stale)


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the hot-path modules' ``.py`` files even where a compiled one sits beside."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        leaf = fullname.rpartition(".")[2]
        for directory in path or sys.path:
            source = Path(directory) / f"{leaf}.py"
            if source.exists():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def prefer_source() -> None:
    """From now on, import the hot path from its ``.py`` files: the pure-Python engine,
    whatever is compiled. Call before anything imports those modules
    (``python -m bench.pure_python`` does)."""
    loaded = [name for name in COMPILED_MODULES if name in sys.modules]
    if loaded:
        raise RuntimeError(f"prefer_source() called after {', '.join(loaded)} was imported")
    if not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())

"""Build hook: compile the hot path with mypyc (everything else is in pyproject.toml).

``pip install .`` builds C extensions for the modules listed in
``stream/compiled.py``; ``RATING_COMPILE=0 pip install .`` builds pure Python.
In a checkout, ``make compile`` (``python setup.py build_ext --inplace``) puts the
extensions beside the sources.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
build_plan = runpy.run_path(str(ROOT / "stream" / "compiled.py"))

extensions = []
if build_plan["compile_requested"]():
    from mypyc.build import mypycify

    sources = [str(path.relative_to(ROOT)) for path in build_plan["source_files"](ROOT)]
    extensions = mypycify(sources, opt_level="3", group_name=build_plan["SHARED_LIBRARY"])



class BuildExtWithManifest(build_ext):  # type: ignore[misc]
    """build_ext, then the SHA-256 of each compiled source beside ``stream/compiled.py``."""

    def run(self) -> None:
        super().run()
        if not extensions:
            return
        target = ROOT / "stream" if self.inplace else Path(self.build_lib) / "stream"
        target.mkdir(parents=True, exist_ok=True)
        digests = build_plan["source_digests"](ROOT)
        (target / build_plan["MANIFEST"]).write_text(json.dumps(digests, indent=1) + "\n")


setup(ext_modules=extensions, cmdclass={"build_ext": BuildExtWithManifest})

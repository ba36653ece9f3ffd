"""Run a module with the hot path interpreted, even where it is compiled.

    python -m bench.pure_python bench.offline --digest ...
    python -m bench.pure_python bench.run --contenders rating ...

For measuring what mypyc's compilation is worth, and for checking that the
compiled and the pure-Python engine write the same bytes
(``tests/unit/stream/test_compiled.py``).
"""

from __future__ import annotations

import runpy
import sys

from stream.compiled import engine_build, prefer_source


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.pure_python MODULE [ARGUMENTS...]")
    prefer_source()
    build = engine_build()
    if build.compiled:
        sys.exit(f"could not load the hot path from source: {build.describe()}")
    print(f"engine: {build.describe()}", file=sys.stderr)
    module, *arguments = sys.argv[1:]
    sys.argv = [module, *arguments]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

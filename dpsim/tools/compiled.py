"""The compiled build of the fluid network (`dpsim.kernel.resources.net`, `dpsim.kernel.resources.fluid`) and of the
run loop that drives it (`dpsim.kernel.loop`), with Cython.

    pip install -e .                   # builds it when a C compiler is there (setup.py), else pure Python
    python -m dpsim.compiled status    # which one is imported: compiled or pure Python
    python -m dpsim.compiled build     # (re)compile the modules in place, e.g. after editing them
    python -m dpsim.compiled clean     # remove the compiled modules (back to pure Python)

What it is: the same `.py` source, compiled with the C types declared beside it (`elements.pxd`,
`completions.pxd`, `net.pxd`, `fluid.pxd`, `loop.pxd`; Cython's pure-Python mode). The compiled code performs the
same floating-point operations in the same order, so a run gives bit-identical results
(`tests/test_compiled.py` checks a whole run). Two heaps take a typed form when compiled (the solver's
links, the flows' finish times; `cython.compiled` branches), ordered by the same unique keys, so they
give the same order. It is 2-3x faster on the network, which dominates paper-scale runs in pure
Python. What it is not: a different model. Without a compiler (or if the build fails) the install is
pure Python; `run.json` records which one ran (`network_compiled`). Python imports a compiled module
in preference to its `.py`, so a compiled module older than its sources refuses to load
(`check_fresh`): rebuild or clean after editing one of these modules or its `.pxd`.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from dpsim.kernel.resources.build_state import MODULES, SOURCE_ROOT, compiled_files, module_source, stale_sources  # noqa: F401  (the build state, re-exported)


def missing_build_tools() -> str | None:
    """Why a build cannot run here, or None."""
    try:
        import Cython  # noqa: F401
    except ImportError:
        return "Cython is not installed (pip install -e '.[fast]')"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler: {compiler!r} is not on PATH"
    return None


def extensions(build_dir: str) -> list:
    """The Cython extensions of `MODULES` (cythonized into `build_dir`); what `build` compiles here
    and what setup.py compiles at install time."""
    from Cython.Build import cythonize
    from setuptools import Extension

    # annotation_typing off: the .py annotations are for readers and type checkers; the C types are
    # those of the .pxd files, so Python-level semantics (int vs float, None) stay as written.
    return cythonize(
        [Extension(m, [str(module_source(m))]) for m in MODULES],
        compiler_directives={"language_level": 3, "annotation_typing": False},
        include_path=[str(SOURCE_ROOT)], build_dir=build_dir, force=True, quiet=True)


def build() -> None:
    """Compile `MODULES` and put each next to its .py file."""
    why = missing_build_tools()
    if why:
        raise SystemExit(f"dpsim.tools.compiled: cannot build: {why}")
    from setuptools import Distribution

    with tempfile.TemporaryDirectory() as scratch:
        # A bare Distribution: no setup() call, so the repo's pyproject.toml is not re-read.
        command = Distribution({"name": "dpsim-compiled", "ext_modules": extensions(scratch)}).get_command_obj(
            "build_ext")
        command.build_lib, command.build_temp = str(Path(scratch) / "lib"), str(Path(scratch) / "tmp")
        command.ensure_finalized()
        command.run()
        for m in MODULES:
            source = module_source(m)
            for built in Path(scratch, "lib", *m.split(".")[:-1]).glob(f"{source.stem}.*"):
                shutil.copy2(built, source.parent / built.name)
                os.utime(source.parent / built.name)  # built now, after its sources (see `stale_sources`)


def clean() -> list[Path]:
    removed = compiled_files()
    for path in removed:
        path.unlink()
    return removed


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "status"
    if command == "build":
        build()
        print(f"compiled: {', '.join(p.name for p in compiled_files() if p.suffix != '.c')}")
    elif command == "clean":
        print(f"removed: {', '.join(p.name for p in clean()) or 'nothing'}")
    elif command == "status":
        try:
            from dpsim.kernel.resources import net
        except ImportError as exc:
            raise SystemExit(str(exc)) from None
        state = "compiled" if net.COMPILED else "pure Python"
        why = missing_build_tools()
        print(f"dpsim.kernel.resources.net imported from {state}" + (f"; a build cannot run here: {why}" if why else ""))
    else:
        raise SystemExit(f"dpsim.tools.compiled: unknown command {command!r}; expected build, status or clean")


if __name__ == "__main__":
    main()

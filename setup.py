"""Builds the compiled network (`dpsim.kernel.resources.net`, `dpsim.kernel.resources.fluid`; see dpsim/tools/compiled.py) at install time
when Cython and a C compiler are there; otherwise, or if the build fails, the install is pure Python
(the same results, slower). Everything else is in pyproject.toml."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dpsim.tools import compiled  # noqa: E402  (dpsim/__init__.py, compiled.py and build_state.py import nothing else)


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: all modules compiled, or none (pure Python)."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001  (any compiler or Cython failure)
            self._give_up(exc)

    def _give_up(self, exc):
        for ext in self.extensions:  # none or all: fluid's compiled code needs net's compiled types
            for path in (Path(self.get_ext_fullpath(ext.name)), compiled.SOURCE_ROOT / self.get_ext_filename(ext.name)):
                path.unlink(missing_ok=True)
        print(f"dpsim: the compiled network was not built ({exc}); installing pure Python", file=sys.stderr)


def _extensions():
    why = compiled.missing_build_tools()
    if why:
        print(f"dpsim: not building the compiled network: {why}; installing pure Python", file=sys.stderr)
        return []
    try:
        return compiled.extensions("build/cython")
    except Exception as exc:  # noqa: BLE001  (a Cython error: the pure-Python install still works)
        print(f"dpsim: not building the compiled network: Cython failed ({exc}); installing pure Python",
              file=sys.stderr)
        return []


if __name__ == "__main__":  # as pip's build backend runs it (tests import the parts above)
    setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})

"""Which compiled network modules exist beside their sources, and whether they are stale: the state
`dpsim.kernel.resources.net` checks when it is imported compiled and `dpsim.tools.compiled` (the build tool) manages. A leaf
module, so the network does not import its build tool."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = "dpsim.kernel.resources"  # the compiled modules' package (this module's)
SOURCE_ROOT = PACKAGE_DIR.parents[2]  # the folder holding dpsim/ (Cython's include path for the .pxd cimports)
MODULES = ("elements", "completions", "fluid", "net")  # leaves first: the others cimport their classes; all are rebuilt together


def compiled_files() -> list[Path]:
    return sorted(p for m in MODULES for p in PACKAGE_DIR.glob(f"{m}.*") if p.suffix in (".so", ".pyd", ".c"))


def stale_sources(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Sources (.py, .pxd) of a compiled module in `package_dir` changed after it was built. Python
    imports the compiled module in preference to its .py, so an edit would otherwise be ignored."""
    stale = []
    for m in MODULES:
        built = [p for p in package_dir.glob(f"{m}.*") if p.suffix in (".so", ".pyd")]
        if not built:
            continue
        built_at = min(p.stat().st_mtime for p in built)
        for name in (f"{m}.py", f"{m}.pxd"):
            source = package_dir / name
            if source.exists() and source.stat().st_mtime > built_at:
                stale.append(name)
    return stale


def in_checkout(source_root: Path = SOURCE_ROOT) -> bool:
    """Whether dpsim runs from a source checkout (pyproject.toml beside dpsim/), where sources are
    edited in place. An installed copy (site-packages) is not: pip writes a wheel's files with the time
    it extracts them, the compiled module before its .py, so mtimes say nothing there."""
    return (source_root / "pyproject.toml").is_file()


def check_fresh() -> None:
    """Refuse to run compiled modules older than their sources in a checkout (called by
    `dpsim.kernel.resources.net` when compiled)."""
    if not in_checkout():
        return
    stale = stale_sources()
    if stale:
        raise ImportError(f"dpsim: the compiled network in {PACKAGE_DIR} is older than {', '.join(stale)}; "
                          f"rebuild it (python -m dpsim.compiled build) or remove it (python -m dpsim.compiled clean)")

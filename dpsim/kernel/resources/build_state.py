"""Which compiled modules exist beside their sources, and whether they are stale: the state
`dpsim.kernel.resources.net` checks when it is imported compiled and `dpsim.tools.compiled` (the build tool) manages. A leaf
module, so the network does not import its build tool."""

from __future__ import annotations

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[3]  # the folder holding dpsim/ (Cython's include path for the .pxd cimports)
# The compiled modules, leaves first: the others cimport their classes (the run loop the network's);
# all are built together, or none.
MODULES = ("dpsim.kernel.resources.elements", "dpsim.kernel.resources.completions", "dpsim.kernel.resources.fluid",
           "dpsim.kernel.resources.net", "dpsim.kernel.loop")
_BUILT = (".so", ".pyd")


def module_source(module: str, source_root: Path = SOURCE_ROOT) -> Path:
    """The .py of a dotted module name under `source_root`."""
    return source_root.joinpath(*module.split(".")).with_suffix(".py")


def compiled_files(source_root: Path = SOURCE_ROOT) -> list[Path]:
    """The compiled modules (and Cython's .c files) beside their sources."""
    found = []
    for m in MODULES:
        source = module_source(m, source_root)
        found += [p for p in source.parent.glob(f"{source.stem}.*") if p.suffix in (*_BUILT, ".c")]
    return sorted(found)


def stale_sources(source_root: Path = SOURCE_ROOT) -> list[str]:
    """Sources (.py, .pxd) of a compiled module under `source_root` changed after it was built. Python
    imports the compiled module in preference to its .py, so an edit would otherwise be ignored."""
    stale = []
    for m in MODULES:
        source = module_source(m, source_root)
        built = [p for p in source.parent.glob(f"{source.stem}.*") if p.suffix in _BUILT]
        if not built:
            continue
        built_at = min(p.stat().st_mtime for p in built)
        for edited in (source, source.with_suffix(".pxd")):
            if edited.exists() and edited.stat().st_mtime > built_at:
                stale.append(edited.name)
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
        raise ImportError(f"dpsim: the compiled network in {SOURCE_ROOT / 'dpsim'} is older than {', '.join(stale)}; "
                          f"rebuild it (python -m dpsim.compiled build) or remove it (python -m dpsim.compiled clean)")

"""Rewrite imports of dpsim's old flat modules to the layered packages (issue 18; docs/architecture.md,
"Old module -> new module").

    python -m dpsim.tools.rewrite_imports FILE_OR_FOLDER...            # rewrite in place
    python -m dpsim.tools.rewrite_imports --check FILE_OR_FOLDER...    # list what would change, exit 1 if any

What it rewrites, in any text file (.py, .pyx, .pxd, .ipynb, .md, .toml, .cfg, .txt, .yaml):
- dotted names: dpsim + "." + simulator becomes dpsim.kernel.simulation, and the old engines.prefill
  becomes kernel.engines.prefill (imports, `import dpsim.x as y`, monkeypatch strings), except after
  `-m ` (the `python -m` entry points keep working through shims);
- `from dpsim import a, b as c` -> one `from <new package> import ...` line per new package;
- file paths: the old dpsim/simulator.py becomes dpsim/kernel/simulation.py.
It is idempotent: a name already in its new place is left alone. A file containing the marker
`rewrite_imports: skip-file` (as docs/architecture.md, whose table names the old modules) is left alone.
The table is `MOVES` below.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# One row per moved module; a package row (dpsim.kernel.engines) moves everything under it.
# One row per moved module, without the leading "dpsim." (so that this file does not rewrite itself);
# a package row (engines) moves everything under it.
MOVES: list[tuple[str, str]] = [
    ("config", "scenario.config"),
    ("units", "scenario.units"),
    ("plausibility", "scenario.plausibility"),
    ("scenario_files", "scenario.files"),
    ("cost", "scenario.cost"),
    ("models", "scenario.models"),
    ("simulator", "kernel.simulation"),
    ("entities", "kernel.entities"),
    ("invariants", "kernel.invariants"),
    ("guard", "kernel.guard"),
    ("progress", "kernel.progress"),
    ("engines", "kernel.engines"),
    ("policies", "kernel.policies"),
    ("net", "kernel.resources.net"),
    ("fluid", "kernel.resources.fluid"),
    ("build_state", "kernel.resources.build_state"),
    ("hardware", "kernel.resources.hardware"),
    ("gpu", "kernel.resources.gpu"),
    ("results", "metrics.results"),
    ("guidance", "metrics.guidance"),
    ("export", "metrics.export"),
    ("timeline", "metrics.timeline"),
    ("runs", "metrics.runs"),
    ("sweep", "planning.sweep"),
    ("seeds", "planning.seeds"),
    ("capacity", "planning.capacity"),
    ("capacity_log", "planning.capacity_log"),
    ("plan", "planning.plan"),
    ("plots", "viz.plots"),
    ("report", "viz.report"),
    ("report_html", "viz.report_html"),
    ("report_plots", "viz.report_plots"),
    ("tables", "viz.tables"),
    ("testbed_fit", "reproduce.testbed_fit"),
    ("bench", "tools.bench"),
    ("compiled", "tools.compiled"),
    ("plan_cli", "cli.plan"),
    ("trace_cli", "cli.trace"),
    ("reproduce.cli", "cli.reproduce"),
]
MODULE_MAP: dict[str, str] = {f"dpsim.{old}": f"dpsim.{new}" for old, new in MOVES}
# Names that moved to another module (after the module moves above): (module, name) -> new module.
NAME_MOVES: dict[tuple[str, str], str] = {
    ("dpsim.scenario.config", "load_scenario"): "dpsim.scenario.loading",
}
_NEW = set(MODULE_MAP.values())
_DOTTED = re.compile(r"(?<![\w.])(-m\s+)?(dpsim(?:\.[A-Za-z_]\w*)+)")
_PATH = re.compile(r"(?<![\w/])dpsim/((?:[A-Za-z_]\w*/)*[A-Za-z_]\w*)(\.pyx|\.pxd|\.py|/)")
_FROM_MODULE = re.compile(r"^([ \t]*)from (dpsim(?:\.\w+)+) import (\([^)]*\)|[^\n#(]*?)([ \t]*#[^\n]*)?$", re.MULTILINE)
_FROM_DPSIM = re.compile(r"^([ \t]*)from dpsim import (\([^)]*\)|[^\n#]*?)([ \t]*#[^\n]*)?$", re.MULTILINE)


def _longest_prefix(dotted: str, names) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return None


def new_name(dotted: str) -> str:
    """`dotted` in its new place (unchanged if it did not move or has moved already)."""
    old = _longest_prefix(dotted, MODULE_MAP)
    if old is None:
        return dotted
    done = _longest_prefix(dotted, _NEW)
    if done is not None and len(done) > len(old):
        return dotted  # already rewritten (e.g. dpsim.cli.app under the old dpsim.cli.app)
    return MODULE_MAP[old] + dotted[len(old):]


def _rewrite_from_dpsim(match: re.Match) -> str:
    indent, names, comment = match.group(1), match.group(2), match.group(3) or ""
    items = [n.strip() for n in names.strip("()").replace("\n", " ").split(",") if n.strip()]
    groups: dict[str, list[str]] = {}
    for item in items:
        name = item.split(" as ")[0].strip()
        target = new_name(f"dpsim.{name}")
        parent, _, leaf = target.rpartition(".")
        rest = item[len(name):]
        groups.setdefault(parent, []).append(leaf + rest)
    if list(groups) == ["dpsim"]:
        return match.group(0)
    lines = [f"{indent}from {parent} import {', '.join(leaves)}" for parent, leaves in groups.items()]
    lines[0] += comment
    return "\n".join(lines)


def _rewrite_moved_names(match: re.Match) -> str:
    indent, module, names, comment = match.group(1), match.group(2), match.group(3), match.group(4) or ""
    items = [n.strip() for n in names.strip("()").replace("\n", " ").split(",") if n.strip()]
    if not any((module, item.split(" as ")[0].strip()) in NAME_MOVES for item in items):
        return match.group(0)
    groups: dict[str, list[str]] = {}
    for item in items:
        target = NAME_MOVES.get((module, item.split(" as ")[0].strip()), module)
        groups.setdefault(target, []).append(item)
    lines = [f"{indent}from {target} import {', '.join(names)}" for target, names in groups.items()]
    lines[0] += comment
    return "\n".join(lines)


def _rewrite_path(match: re.Match) -> str:
    stem, suffix = match.group(1), match.group(2)
    dotted = new_name("dpsim." + stem.replace("/", "."))
    return dotted.replace(".", "/") + suffix


def rewrite_text(text: str) -> str:
    text = _FROM_DPSIM.sub(_rewrite_from_dpsim, text)
    text = _DOTTED.sub(lambda m: m.group(0) if m.group(1) else new_name(m.group(2)), text)
    text = _FROM_MODULE.sub(_rewrite_moved_names, text)
    return _PATH.sub(_rewrite_path, text)


def rewrite_notebook(text: str) -> str:
    """A Jupyter notebook: the code and Markdown of each cell, rewritten as Python text (so that one
    import line may become several); the notebook is left as it was if nothing changes."""
    notebook = json.loads(text)
    changed = False
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", []))
        new = rewrite_text(source)
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
            changed = True
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n" if changed else text


_SKIP_MARKER = "rewrite_imports: " + "skip-file"  # split so that this file is not skipped
_SUFFIXES = {".py", ".pyx", ".pxd", ".ipynb", ".md", ".toml", ".cfg", ".txt", ".yaml", ".yml", ".in"}


def _files(paths: list[str]):
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES
                              and "__pycache__" not in p.parts)
        else:
            yield path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="files or folders to rewrite")
    parser.add_argument("--check", action="store_true", help="only list files that would change; exit 1 if any")
    args = parser.parse_args(argv)
    changed = []
    for path in _files(args.paths):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"rewrite_imports: {path}: cannot read ({exc})", file=sys.stderr)
            return 2
        if _SKIP_MARKER in text:
            continue
        new = rewrite_notebook(text) if path.suffix == ".ipynb" else rewrite_text(text)
        if new != text:
            changed.append(path)
            if not args.check:
                path.write_text(new)
    for path in changed:
        print(f"{'would rewrite' if args.check else 'rewrote'} {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main())

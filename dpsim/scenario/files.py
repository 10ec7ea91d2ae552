"""Scenario files: reading YAML (one located error instead of a traceback, limits on depth and
alias expansion), merging `include:` files, and applying `--set` overrides, recording which file
set each field so that `dpsim.scenario.config` can name it in errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ScenarioError(Exception):
    """A scenario that cannot be loaded; the message is one readable line."""


def read_yaml(path: Path, error: type[Exception] = ScenarioError) -> Any:
    """The YAML document in the file `path`. A file that is not UTF-8 text or not valid YAML raises
    one located `error` (file, line, problem) instead of a traceback; every YAML input of dpsim (scenario,
    sweep, experiment, published numbers) is read here."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected YAML") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise error(f"{path}:{line} is not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:
        raise error(f"{path}: YAML nested too deeply to read") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4,300 digits
        raise error(f"{path}: a YAML value cannot be read ({str(exc).splitlines()[0][:120]})") from None
    problem = _shape_problem(document)
    if problem:
        raise error(f"{path}: {problem}")
    return document


YAML_MAX_DEPTH = 32  # a scenario is 3 levels deep; sweeps and published numbers under 10
YAML_MAX_NODES = 200_000  # values after expanding aliases (published.yaml has a few thousand)


def _shape_problem(document: Any) -> str | None:
    """Why a YAML document is no input of dpsim's (nested too deeply, a recursive alias, or an alias
    "bomb" that expands to millions of values), or None. Walked iteratively with a budget, so a
    bomb costs at most YAML_MAX_NODES steps."""
    budget = YAML_MAX_NODES
    stack = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return f"YAML expands to more than {YAML_MAX_NODES:,} values (aliases repeated too often)"
        if depth > YAML_MAX_DEPTH:
            return f"YAML nested more than {YAML_MAX_DEPTH} levels deep (or an alias that contains itself)"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None


def load_yaml_with_includes(path: Path, origins: dict[tuple, str], _stack: tuple = ()) -> dict:
    """Read `path`, merging its `include:` files first; record which file set each leaf key."""
    path = Path(path)
    if not path.is_file():
        where = f" (included from {_stack[-1]})" if _stack else ""
        raise ScenarioError(f"{path}: file not found{where}")
    if path.resolve() in _stack:
        raise ScenarioError(f"{path}: include cycle through {' -> '.join(str(s) for s in _stack)}")
    data = read_yaml(path, ScenarioError) or {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(inc, str) and inc for inc in includes):
        raise ScenarioError(f"{path}: include = {includes!r}: expected a file name or a list of file names, "
                            "e.g. include: [presets/h800-node.yaml]")
    merged: dict = {}
    for inc in includes:
        sub = load_yaml_with_includes(path.parent / inc, origins, _stack + (path.resolve(),))
        deep_merge(merged, sub)
    _record_origins(data, str(path), origins)
    deep_merge(merged, data)
    return merged


def _record_origins(data: dict, source: str, origins: dict[tuple, str], prefix: tuple = ()) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            _record_origins(value, source, origins, prefix + (key,))
        else:
            origins[prefix + (key,)] = source


def deep_merge(base: dict, top: dict) -> dict:
    """Merge `top` into `base` in place; mappings merge recursively, anything else is replaced."""
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def apply_overrides(data: dict, overrides: list[str], origins: dict[tuple, str]) -> None:
    """Apply `a.b.c=value` strings; the value is read as a YAML scalar ("64K" stays a string)."""
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {item!r}: expected KEY=VALUE, e.g. --set workload.agents=1024")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ScenarioError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except (yaml.YAMLError, ValueError, OverflowError, RecursionError):
            value = raw  # not a YAML scalar: validation says what was expected
        problem = _shape_problem(value)
        if problem:
            raise ScenarioError(f"--set {key.strip()}: {problem}")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
        origins[tuple(parts)] = "--set"

"""The result cache of `dpsim reproduce --cache`: one JSON file per finished simulation (or search).

A result is keyed by the fully resolved scenario, what is measured, and a hash of the simulator's
model source and of the tasks that measure it (not the rest of dpsim/reproduce/, the command lines,
plots or benchmarks), so a cached number never outlives a change to the model or to how it is
measured, while the reporting code may change freely; an interrupted set resumes where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import dpsim

CACHE_ENV = "DPSIM_REPRODUCE_CACHE"  # folder of finished simulations, shared by points and invocations


# Modules that only present or drive results (command lines, plots, benchmarks, the testbed-fit driver,
# this package): a change to them cannot change a simulated number, so it must not empty the cache.
_NOT_MODEL = ("cli/", "bench.py", "tools/bench.py", "viz/plots.py", "testbed_fit.py")  # "x/": the whole package


# The one module of dpsim/reproduce/ that measures: its tasks turn a simulation into a row's numbers
# (e.g. the steady task's last-window TTFT), so a change to it must not reuse a cached number.
_MEASURING = ("reproduce/tasks.py",)


def _presents_only(name: str) -> bool:
    return any(name.startswith(entry) if entry.endswith("/") else name == entry for entry in _NOT_MODEL)


def hashed_sources() -> list:
    """The source files whose text keys the cache: every module of dpsim that can change a
    simulated or measured number (not the rest of dpsim/reproduce/, not the modules in _NOT_MODEL)."""


    root = Path(dpsim.__file__).parent
    chosen = []
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name in _MEASURING or (not name.startswith("reproduce/") and not _presents_only(name)):
            chosen.append(path)
    return chosen


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """Hash of the simulator's source, so a cached result never outlives a change to the model
    (read once per process, not once per point)."""

    digest = hashlib.sha256()
    for path in hashed_sources():
        digest.update(path.read_bytes())
    return digest.hexdigest()


def simulation_key(scenario, measurement: dict) -> str:
    """The identity of one simulation (or search): the fully resolved scenario, what is measured (the
    task and the options that change a measurement) and the simulator's source. Two points with the
    same key get the same numbers (a run is deterministic for its scenario, seed included), so the
    same simulation in two experiments (e.g. Basic in the offline grid and in the ablation ladder)
    runs once."""
    return hashlib.sha256((scenario.model_dump_json() + json.dumps(measurement, sort_keys=True)
                           + _code_hash()).encode()).hexdigest()[:24]


def cache_path(scenario, measurement: dict):
    """Where one simulation's (or search's) numbers are kept (`simulation_key`), so an interrupted
    reproduce resumes where it stopped; None when no cache folder is set."""
    import os

    folder = os.environ.get(CACHE_ENV)
    if not folder:
        return None
    return Path(folder) / f"{simulation_key(scenario, measurement)}.json"


def measure_cached(scenario, measurement: dict, measure) -> dict:
    """`measure()` (a dict of numbers), or the cached dict of an identical earlier measurement."""
    cached = cache_path(scenario, measurement)
    if cached is not None and cached.is_file():
        return json.loads(cached.read_text())
    measured = measure()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(measured, sort_keys=True))
        tmp.replace(cached)
    return measured

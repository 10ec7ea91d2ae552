"""Sweeps: many scenario variants, run in parallel, resumable, appended to a table as they finish.

A sweep is a base scenario plus `--set`-style overrides combined as a product (`grid`), a zip
(`zip`: equal-length lists varied together) and/or an explicit list (`points`):

    name: storage-nic-whatif
    base: ../quickstart.yaml              # relative to this file
    set: [workload.max_turns=8]           # applied to every point
    grid:                                 # product of all lists
      policy.system: [basic, dualpath]
      hardware.storage_nic.count: [1, 2]
    zip:                                  # varied together, row by row
      cluster.prefill_nodes: [1, 2]
      cluster.decode_nodes: [2, 1]
    points:                               # explicit list (each combined with grid x zip)
      - {workload.agents: 16}
      - {workload.agents: 32, workload.mal: 64K}
    labels: {experiment: whatif}          # extra columns in every row

    from dpsim.planning import sweep
    points, meta = sweep.load_sweep("sweeps/whatif.yaml")
    frame = sweep.run_points(points, jobs=2, table="runs/whatif.parquet", resume=True)

Each point has a stable `key` (hash of base path, overrides and labels); `--resume` skips keys
whose row in the table has status "ok". A point that raises records `status="error"` and a one-line
`error`, and the sweep goes on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dpsim import api
from dpsim.scenario.config import ScenarioError, read_yaml
from dpsim.scenario.loading import load_scenario

__all__ = ["Point", "SweepError", "load_sweep", "expand", "run_point", "run_points", "flatten", "read_table",
           "scenario_for"]

SWEEP_KEYS = ("name", "base", "set", "grid", "zip", "points", "labels", "jobs", "executor", "out")
ROW_FIELDS = ("key", "status", "error", "wall_s")


_SWEEP_RUNS = itertools.count(1)  # invocations of run_points in this process


class SweepError(Exception):
    """A sweep that cannot be loaded or run; the message is one readable line."""


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the base scenario file and its ordered overrides."""

    base: str
    overrides: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """Stable id of the point (the base path as written, overrides and labels, in order)."""
        text = json.dumps([os.path.normpath(self.base), [list(o) for o in self.overrides],
                           [[k, _scalar(v)] for k, v in self.labels]], sort_keys=False, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def set_args(self) -> list[str]:
        """The overrides as `--set` strings."""
        return [f"{k}={v}" for k, v in self.overrides]


def _scalar(value: Any) -> str:
    """A YAML scalar written back as the text a `--set` would carry (True -> "true", 4 -> "4")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


# ---------------------------------------------------------------------------------------- expand
def expand(base: str, grid: dict | None = None, zip: dict | None = None, points: list[dict] | None = None,
           labels: dict | None = None, fixed: Iterable[str] | dict = ()) -> list[Point]:
    """Points for `base`: every entry of `points` (or one empty entry) x every row of `zip` x the
    product of `grid`, each prefixed by the `fixed` overrides. Later overrides of a key win."""
    fixed_pairs = _pairs_of(fixed)
    zip_rows: list[list[tuple[str, str]]] = [[]]
    if zip:
        lengths = {k: len(v) for k, v in zip.items()}
        if len(set(lengths.values())) > 1:
            raise SweepError(f"zip: lists must have equal lengths, got {lengths}")
        zip_rows = [[(k, _scalar(zip[k][i])) for k in zip] for i in range(next(iter(lengths.values())))]
    grid_rows: list[list[tuple[str, str]]] = [[]]
    if grid:
        keys = list(grid)
        grid_rows = [[(k, _scalar(v)) for k, v in zip_(keys, combo)]
                     for combo in itertools.product(*(grid[k] for k in keys))]
    entries = [_pairs_of(p) for p in points] if points else [[]]
    label_pairs = tuple((str(k), v) for k, v in (labels or {}).items())
    out = []
    for entry in entries:
        for zrow in zip_rows:
            for grow in grid_rows:
                merged: dict[str, str] = {}
                for k, v in fixed_pairs + entry + zrow + grow:
                    merged.pop(k, None)  # keep the order of last assignment
                    merged[k] = v
                out.append(Point(str(base), tuple(merged.items()), label_pairs))
    return out


zip_ = zip  # the builtin, shadowed by expand's argument name


def _pairs_of(overrides: Iterable[str] | dict) -> list[tuple[str, str]]:
    if isinstance(overrides, dict):
        return [(str(k), _scalar(v)) for k, v in overrides.items()]
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise SweepError(f"set: {item!r}: expected KEY=VALUE, e.g. workload.agents=64")
        k, v = item.split("=", 1)
        pairs.append((k.strip(), v))
    return pairs


# ------------------------------------------------------------------------------------------ load
def load_sweep(path: str | Path) -> tuple[list[Point], dict]:
    """Parse and validate SWEEP.yaml; every point's scenario is validated before anything runs.
    Returns (points, meta) where meta holds name, jobs, executor, out (None where not given)."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: file not found")
    data = read_yaml(path, SweepError) or {}
    if not isinstance(data, dict):
        raise SweepError(f"{path}: expected a mapping with keys {', '.join(SWEEP_KEYS)}")
    for key in data:
        if key not in SWEEP_KEYS:
            raise SweepError(f"{path}: unknown key '{key}'; expected one of: {', '.join(SWEEP_KEYS)}")
    if "base" not in data or not isinstance(data["base"], str):
        raise SweepError(f"{path}: base = {data.get('base')!r}: expected the path of a scenario YAML")
    base = Path(os.path.normpath(path.parent / data["base"]))
    if not base.is_file():
        raise SweepError(f"{path}: base = {data['base']!r}: file not found (looked at {base})")
    _check_shape(path, data)
    try:
        points = expand(str(base), data.get("grid"), data.get("zip"), data.get("points"), data.get("labels"),
                        fixed=data.get("set") or ())
    except SweepError as exc:
        raise SweepError(f"{path}: {exc}") from None
    _validate_points(path, data, points)
    meta = {k: data.get(k) for k in ("name", "jobs", "executor", "out")}
    meta["name"] = meta["name"] or path.stem
    if meta["out"] is not None:  # like base: a relative out is relative to the sweep file
        meta["out"] = str(path.parent / meta["out"])
    if meta["executor"] not in (None, "local", "ray"):
        raise SweepError(f"{path}: executor = {meta['executor']!r}: expected local or ray")
    if meta["jobs"] is not None and (not isinstance(meta["jobs"], int) or meta["jobs"] < 1):
        raise SweepError(f"{path}: jobs = {meta['jobs']!r}: expected a positive integer")
    return points, meta


def _check_shape(path: Path, data: dict) -> None:
    """Types of the combining sections, with the offending field named."""
    for section in ("grid", "zip"):
        value = data.get(section)
        if value is None:
            continue
        if not isinstance(value, dict) or not value:
            raise SweepError(f"{path}: {section}: expected a non-empty mapping of field -> list of values")
        for k, v in value.items():
            if not isinstance(v, list) or not v:
                raise SweepError(f"{path}: {section}.{k} = {v!r}: expected a non-empty list of values")
    if data.get("points") is not None:
        pts = data["points"]
        if not isinstance(pts, list) or not all(isinstance(p, dict) for p in pts):
            raise SweepError(f"{path}: points: expected a list of mappings field -> value")
    if data.get("set") is not None and not isinstance(data["set"], (list, dict)):
        raise SweepError(f"{path}: set = {data['set']!r}: expected a list of KEY=VALUE or a mapping")
    if data.get("labels") is not None and not isinstance(data["labels"], dict):
        raise SweepError(f"{path}: labels = {data['labels']!r}: expected a mapping")


def _validate_points(path: Path, data: dict, points: list[Point]) -> None:
    """Load every point's scenario (no run), naming the sweep field that set a bad override."""
    where: dict[str, str] = {}
    for k in (data.get("set") if isinstance(data.get("set"), dict) else
              [s.split("=", 1)[0].strip() for s in data.get("set") or []]):
        where[k] = f"set.{k}"
    for section in ("grid", "zip"):
        for k in data.get(section) or {}:
            where[k] = f"{section}.{k}"
    for i, p in enumerate(data.get("points") or []):
        for k in p:
            where.setdefault(k, f"points[{i}].{k}")
    for point in points:
        try:
            load_scenario(point.base, point.set_args())
        except ScenarioError as exc:
            message = str(exc)
            field = next((k for k in where if f"{k} =" in message or f"{k}:" in message), None)
            value = dict(point.overrides).get(field) if field else None
            if field:
                raise SweepError(f"{path}: {where[field]} = {value!r}: {message.removeprefix('--set: ')}") from None
            raise SweepError(f"{path}: point {point.set_args()}: {message}") from None


# ------------------------------------------------------------------------------------------- run
def scenario_for(point: Point):
    """The validated scenario of a point."""
    return load_scenario(point.base, point.set_args())


def flatten(summary: dict, prefix: str = "") -> dict:
    """Nested summary -> flat columns: {"ttft_s": {"p50": x}} -> {"ttft_s_p50": x}."""
    flat = {}
    for k, v in summary.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, name + "_"))
        elif isinstance(v, (list, tuple)):
            flat[name] = json.dumps(v)
        else:
            flat[name] = v
    return flat


def run_point(point: Point) -> dict:
    """Default task: load the point's scenario, simulate it, return its flattened summary."""
    result = api.run(scenario_for(point), progress=False)
    return flatten(result.summary)


def _call(task: Callable[[Point], dict], point: Point) -> dict:
    """Run `task` on `point` and make its row: never raises, so one bad point cannot stop a sweep."""
    t0 = time.perf_counter()
    try:
        row = dict(task(point))
        status, error = "ok", ""
    except BaseException as exc:  # noqa: BLE001 - recorded in the row, the sweep goes on
        if isinstance(exc, KeyboardInterrupt):
            raise
        row, status = {}, "error"
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        if not isinstance(exc, (ScenarioError, SweepError)):
            tb = traceback.extract_tb(exc.__traceback__)
            if tb:
                error += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
    return _row(point, row, status, error, time.perf_counter() - t0)


def _row(point: Point, row: dict, status: str, error: str, wall_s: float) -> dict:
    head = {"key": point.key, "status": status, "error": error, "wall_s": round(wall_s, 3), "base": point.base}
    head.update({k: v for k, v in point.labels})
    head.update({k: v for k, v in point.overrides})
    head.update({k: v for k, v in row.items() if k not in head})
    return head


def read_table(table: str | Path) -> pd.DataFrame:
    """A sweep table (CSV or parquet by suffix); empty frame if it does not exist."""
    table = Path(table)
    if not table.exists():
        return pd.DataFrame(columns=list(ROW_FIELDS))
    if table.suffix == ".parquet":
        return pd.read_parquet(table)
    return pd.read_csv(table, dtype={"key": str})


def _write_table(table: Path, rows: list[dict]) -> None:
    """Rewrite the whole table atomically (temp file + rename): a kill never leaves half a file."""
    table.parent.mkdir(parents=True, exist_ok=True)
    frame = _frame(rows)
    tmp = table.with_name(f".{table.name}.tmp")
    if table.suffix == ".parquet":
        # Mixed-type columns (an override that is "64K" in one row, "4" in another) go as text.
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, table)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(ROW_FIELDS))
    return frame


def run_points(points: list[Point], task: Callable[[Point], dict] = run_point, jobs: int = 2,
               executor: str = "local", table: str | Path | None = None, resume: bool = False,
               progress: bool = True, ray_address: str | None = None, flush_every_s: float = 1.0) -> pd.DataFrame:
    """Run `task` on every point (in parallel) and return one row per point, in `points` order.

    executor "local": `jobs` worker processes (jobs=1 runs in this process); "ray": Ray tasks on
    the cluster at `ray_address` (None starts a local Ray with `jobs` CPUs). Rows are written to
    `table` (CSV or parquet) as points finish, at most every `flush_every_s` seconds and at the
    end. With `resume`, points whose key already has status "ok" in `table` are not run again."""
    if executor not in ("local", "ray"):
        raise SweepError(f"executor = {executor!r}: expected local or ray")
    if jobs < 1:
        raise SweepError(f"jobs = {jobs!r}: expected a positive integer")
    keys = [p.key for p in points]
    if len(set(keys)) != len(keys):
        dup = next(p for p in points if keys.count(p.key) > 1)
        raise SweepError(f"duplicate point {dup.set_args()} (give it a distinguishing label)")
    table = Path(table) if table else None
    done: dict[str, dict] = {}
    kept: list[dict] = []  # rows of the table that belong to other sweeps: kept as they were
    if table is not None and resume and table.exists():
        previous = read_table(table)
        for row in previous.to_dict("records"):
            row = {k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v))}
            if row.get("key") in keys:
                if row.get("status") == "ok":
                    done[row["key"]] = row
            else:
                kept.append(row)
    todo = [p for p in points if p.key not in done]
    rows: dict[str, dict] = dict(done)
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="point", file=sys.stderr, desc="sweep", dynamic_ncols=True)
    last_flush = [0.0]
    # Which invocation ran a row: a resumed sweep leaves earlier rows with their earlier id.
    # Time and pid alone repeat when one process runs two sweeps within a second; the counter does not.
    sweep_run = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(_SWEEP_RUNS)}"

    def finished(row: dict, force: bool = False) -> None:
        if row is not None:
            row["sweep_run"] = sweep_run
            rows[row["key"]] = row
            if bar is not None:
                bar.update(1)
                if row["status"] != "ok":
                    bar.write(f"point {row['key']} failed: {row['error']}")
        if table is not None and (force or time.monotonic() - last_flush[0] >= flush_every_s):
            _write_table(table, kept + [rows[k] for k in keys if k in rows])
            last_flush[0] = time.monotonic()

    try:
        if executor == "ray":
            _run_ray(todo, task, jobs, ray_address, finished)
        elif jobs == 1 or len(todo) <= 1:
            for p in todo:
                finished(_call(task, p))
        else:
            _run_local(todo, task, jobs, finished)
    finally:
        finished(None, force=True)
        if bar is not None:
            bar.close()
    return _frame([rows[k] for k in keys if k in rows])


def _run_local(todo: list[Point], task, jobs: int, finished) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # "spawn": workers start clean (no inherited threads, Ray or SimPy state); costs ~1 s each.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(_call, task, p): p for p in todo}
        while pending:
            ready, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in ready:
                point = pending.pop(fut)
                try:
                    row = fut.result()
                except Exception as exc:  # a worker died (e.g. out of memory): record, go on
                    row = _row(point, {}, "error", f"{type(exc).__name__}: {exc}"[:500], 0.0)
                finished(row)


def _run_ray(todo: list[Point], task, jobs: int, address: str | None, finished) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError("--executor ray needs Ray: pip install 'dpsim[ray]'") from None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:  # a local Ray, sized like the local executor
            ray.init(num_cpus=jobs, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        refs = {remote.remote(task, p): p for p in todo}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                point = refs.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as exc:  # the task's worker died; record, go on
                    row = _row(point, {}, "error", " ".join(f"{type(exc).__name__}: {exc}".split())[:500], 0.0)
                finished(row)
    finally:
        if started:
            ray.shutdown()

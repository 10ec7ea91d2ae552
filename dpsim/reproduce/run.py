"""Run the paper's experiments: points in parallel (dpsim.planning.sweep), then points.csv, series, figures.

points.csv holds simulated results only, so the same seed gives the same file byte for byte; wall
times go to timing.csv.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from dpsim.planning.sweep import run_points
from dpsim.reproduce.cache import CACHE_ENV
from dpsim.reproduce.experiments import POINT_COLUMNS, Experiment, ExperimentError, build_points, quick_mask
from dpsim.reproduce.tasks import HEARTBEAT_ENV, is_cached, point_simulation_key, reproduce_point

# After the columns: what the figures and the validation table also read.
EXTRA_COLUMNS = ["turns", "ttft_s_mean", "ttst_s_p90", "tpot_s_p90", "tpot_s_mean", "window_end_s",
                 "trajectory_jct_s_mean", "slo_attainment", "attention_balance_max_over_avg", "read_side_fraction_de",
                 "gpu_busy_prefill", "gpu_busy_decode",
                 "stop_reason", "invariants_ok", "capacity_binding", "capacity_trials", "capacity_note",
                 "context_tokens", "append_tokens", "cache_compute_gb_per_pflop", "pd_ratio", "pd_lo_analytic",
                 "pd_hi_analytic", "inside_analytic", "snic_utilisation", "snic_utilisation_prefill",
                 "snic_utilisation_decode", "max_turns", "seed", "quick", "profile", "set", "status", "error", "key",
                 # the paper's TTST (first-to-second-token gap) and TTFT split (docs/modeling.md#ttft-breakdown)
                 "second_token_gap_s_p50", "second_token_gap_s_mean",
                 *(f"ttft_{part}_{stat}" for part in ("queue", "alloc", "read", "prefill") for stat in ("s_mean", "share"))]


def run_reproduce(experiments: list[Experiment], out: str | Path, quick: bool = False, jobs: int = 2,
                  profile: str | None = None, seed: int | None = None, progress: bool = True,
                  figures: bool = True, where: dict[str, str] | None = None,
                  cache: str | Path | None = None, cached_only: bool = False,
                  heartbeat_s: float = 0.0, done: set[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Run every point of `experiments`; write OUT/points.csv, OUT/timing.csv, OUT/series/*.json and
    OUT/figures/*.png. Returns the points table. `cached_only` keeps only the points whose results are
    in `cache` (what a long set has finished so far), so nothing is simulated. `heartbeat_s` > 0: every
    simulation prints its progress to stderr that often (wall seconds). `done` ({(experiment, key)},
    from `done_points`) drops the points that already have a row elsewhere."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = drop_done(build_points(experiments, quick=quick, profile=profile, seed=seed, where=where), done)
    t0 = time.perf_counter()
    if heartbeat_s > 0:
        os.environ[HEARTBEAT_ENV] = str(heartbeat_s)
    # Workers inherit the environment. Without --cache, a scratch folder serves the same purpose for
    # this run only: identical simulations across experiments run once either way (`run_once`).
    with tempfile.TemporaryDirectory(prefix="dpsim-reproduce-") as scratch:
        os.environ[CACHE_ENV] = str(Path(cache or scratch).resolve())
        try:
            if cached_only:
                points = [p for p in points if is_cached(p)]
            raw = run_once(points, jobs=jobs, progress=progress)
        finally:
            os.environ.pop(CACHE_ENV, None)
            os.environ.pop(HEARTBEAT_ENV, None)
    wall_s = time.perf_counter() - t0
    raw["quick"] = quick
    table = points_table(raw)
    table.to_csv(out / "points.csv", index=False)
    raw[["experiment", "policy", "key", "status", "wall_s"]].to_csv(out / "timing.csv", index=False)
    _write_series(raw, out / "series")
    (out / "run.json").write_text(json.dumps({
        "points": len(table), "failed": int((table.status != "ok").sum()), "quick": quick, "jobs": jobs,
        "wall_s": round(wall_s, 1), "experiments": [e.name for e in experiments], "profile": profile,
        "seed": seed, "where": where or {}}, indent=2) + "\n")
    if figures:
        from dpsim.reproduce.figures import draw_all
        draw_all(table, experiments, out / "figures", [out / "series"])
    return table


def run_once(points: list, jobs: int = 2, progress: bool = True) -> pd.DataFrame:
    """`run_points` for reproduce points, one row per point in `points` order, with each simulation
    run once: a point that simulates what an earlier one does (`point_simulation_key`; the paper
    set repeats the same P/D grid in several experiments) waits for it, then reads its numbers from
    the cache folder (`dpsim.reproduce.cache`, which must be set). Two waves, so that two workers
    never run the same simulation at once; the second reads files (or re-runs a point whose first
    run failed), in this process."""
    repeated = mark_repeats(points, set())
    first = [point for point, again in zip(points, repeated) if not again]
    repeats = [point for point, again in zip(points, repeated) if again]
    raw = run_points(first, task=reproduce_point, jobs=jobs, progress=progress)
    if not repeats:
        return raw
    raw = pd.concat([raw, run_points(repeats, task=reproduce_point, jobs=1, progress=False)], ignore_index=True)
    position = {point.key: i for i, point in enumerate(points)}
    return raw.iloc[raw.key.map(position).argsort(kind="stable")].reset_index(drop=True)


def mark_repeats(points: list, simulated: set[str]) -> list[bool]:
    """For each point, whether an earlier one (before it in `points`, or one whose key is already in
    `simulated`) simulates the same (`point_simulation_key`); adds the points' keys to `simulated`.
    What `run_once` runs once, and what `dpsim reproduce --list` counts once."""
    repeated = []
    for point in points:
        key = point_simulation_key(point)
        repeated.append(key is not None and key in simulated)
        if key is not None:
            simulated.add(key)
    return repeated


def points_table(raw: pd.DataFrame) -> pd.DataFrame:
    """The deterministic points.csv frame: the issue's columns, then the extras present, in point order."""
    columns = POINT_COLUMNS + [c for c in EXTRA_COLUMNS if c not in POINT_COLUMNS]
    table = raw.reindex(columns=columns)
    return table.dropna(axis=1, how="all").reindex(columns=[c for c in columns if c in POINT_COLUMNS or
                                                            table[c].notna().any()])


def _write_series(raw: pd.DataFrame, folder: Path) -> None:
    """One JSON per experiment with series: {policy: {...}, ...} (for the balance figure)."""
    if "series" not in raw:
        return
    rows = raw[raw.series.notna()]
    for experiment, group in rows.groupby("experiment", sort=False):
        folder.mkdir(parents=True, exist_ok=True)
        data = {f"{r.policy}": json.loads(r.series) for r in group.itertuples()}
        (folder / f"{experiment}.json").write_text(json.dumps(data, sort_keys=True) + "\n")


def read_points(path: str | Path, required: tuple[str, ...] = ("experiment", "policy", "status")) -> pd.DataFrame:
    """A points.csv as a table; a missing file, one that is not CSV text, or one that lacks one of the
    `required` columns is one located ExperimentError."""
    if not Path(path).is_file():
        raise ExperimentError(f"{path}: file not found; expected a points.csv from dpsim reproduce")
    try:
        table = pd.read_csv(path, dtype={"key": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ExperimentError(f"{path}: not a readable CSV file ({type(exc).__name__}: {exc}); "
                              f"expected a points.csv from dpsim reproduce") from None
    missing = [c for c in required if c not in table]
    if missing:
        raise ExperimentError(f"{path}: column {missing[0]!r} missing; expected a points.csv from dpsim reproduce")
    return table


def done_points(paths, quick: bool = False) -> set[tuple[str, str]]:
    """(experiment, key) of every finished point of the same size (`quick` or full) in the points.csv
    files `paths`: what a set that resumes from a committed table (e.g. docs/data/points.csv, on a
    fresh checkout without the cache) need not run again. A point's key hashes its scenario file, overrides, profile path and
    options, so a point whose experiment file changed since is not done."""
    done: set = set()
    for path in paths:
        table = read_points(path, required=("experiment", "key", "status"))
        ok = table.status.eq("ok") & (quick_mask(table) == quick)
        done.update(zip(table.experiment[ok], table.key[ok]))
    return done


def drop_done(points: list, done: set[tuple[str, str]] | None) -> list:
    """`points` without those in `done` ({(experiment, key)})."""
    if not done:
        return points
    return [p for p in points if (dict(p.labels)["experiment"], p.key) not in done]

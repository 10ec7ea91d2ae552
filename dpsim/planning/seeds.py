"""Several seeds of one question: the mean and a 95 % confidence interval of every result.

Method: the runs of seeds s, s+1, ..., s+N-1 (s = run.seed) are N independent samples (each seed
draws its own synthetic trajectories and online arrivals); a metric's interval is the Student t
interval mean +- t(0.975, N-1) x sd / sqrt(N), sd the sample standard deviation (ddof 1). With one
seed there is no interval. A trace replay without online Poisson arrivals is the same for every
seed, so its interval has zero width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from dpsim.planning.sweep import Point, scenario_for

METHOD = "Student t over seeds, 95 %"

# Two-sided 95 % quantiles t(0.975, df) of Student's t distribution, df = 1..30 (standard tables,
# e.g. NIST/SEMATECH e-Handbook of Statistical Methods, table 1.3.6.7.2).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_Z975 = 1.959964


def t975(df: int) -> float:
    """t(0.975, df): the table up to 30, beyond it the Cornish-Fisher expansion (error < 1e-3)."""
    if df < 1:
        raise ValueError(f"df = {df}: a t interval needs at least two samples")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def seed_list(first: int, count: int) -> list[int]:
    """The seeds of a --seeds N run: first, first+1, ..., first+N-1."""
    if count < 1:
        raise ValueError(f"--seeds = {count}: expected a positive number of seeds")
    return [first + k for k in range(count)]


def interval(values: Iterable[float | None]) -> dict:
    """{mean, low, high, half_width, n} of the finite values (low/high/half_width None below 2)."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"mean": None, "low": None, "high": None, "half_width": None, "n": 0}
    mean = float(arr.mean())
    if arr.size < 2:
        return {"mean": mean, "low": None, "high": None, "half_width": None, "n": 1}
    half = t975(arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "n": int(arr.size)}


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Interval of every numeric field of flat rows (one row per seed), in the rows' field order."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and _number(v)]
    return {k: interval(row.get(k) if _number(row.get(k)) else None for row in rows) for k in keys}


def _number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def fmt(iv: dict, digits: int = 4) -> str:
    """'12.3 +- 0.4' (the 95 % half-width), or the mean alone with one seed, or '-'."""
    if iv.get("mean") is None:
        return "-"
    mean = f"{iv['mean']:.{digits}g}"
    return mean if iv.get("half_width") is None else f"{mean} ±{iv['half_width']:.2g}"


# ------------------------------------------------------------------------------------------ sweeps
def sweep_points(points: list, count: int) -> list:
    """Each sweep point once per seed (its scenario's run.seed .. + count - 1), labelled `seed_of`
    (the point's key without the seed) so the rows can be grouped again."""
    out = []
    for point in points:
        first = scenario_for(point).run.seed
        kept = tuple((k, v) for k, v in point.overrides if k != "run.seed")
        for seed in seed_list(first, count):
            out.append(Point(point.base, kept + (("run.seed", str(seed)),),
                             point.labels + (("seed_of", point.key),)))
    return out


def sweep_intervals(frame):
    """One row per original point: its override and label columns, then `<metric>_mean`, `_low` and
    `_high` for every numeric result column over the point's seeds (rows with status ok)."""
    import pandas as pd

    ok = frame[frame.status == "ok"]
    fixed = [c for c in frame.columns if c in ("base", "seed_of") or "." in c and c != "run.seed"]
    skip = {"wall_s", "run.seed"}
    rows = []
    for _key, group in ok.groupby("seed_of", sort=False):
        row = {c: group[c].iloc[0] for c in fixed}
        row["seeds_ok"] = len(group)
        records = group.drop(columns=[c for c in group.columns if c in skip or c in fixed]).to_dict("records")
        for metric, iv in summarise(records).items():
            row.update({f"{metric}_mean": iv["mean"], f"{metric}_low": iv["low"], f"{metric}_high": iv["high"]})
        rows.append(row)
    return pd.DataFrame(rows)

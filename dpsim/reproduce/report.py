"""The validation table: every published number beside dpsim's, computed from points.csv.

The published numbers and the human-written causes of gaps live in scenarios/paper/published.yaml;
this module only computes and prints. See that file's header for the metric definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsim.reproduce.experiments import ExperimentError, quick_mask, read_yaml_mapping
from dpsim.reproduce.testbed_fit import BASIC_TARGETS, ORACLE_TARGETS
from dpsim.scenario import units

PAIR_COLUMNS = ["model", "layout", "mal", "agents", "aps", "scale"]
METRICS = ("ratio", "reduction", "value", "mean_of", "agreement", "trend")
GAP_NOTE_THRESHOLD = 0.10  # gaps above this get a cause column entry


@dataclass
class Item:
    id: str
    claim: str
    published: float
    metric: str
    experiment: str | None = None
    column: str | None = None
    num: dict | None = None
    den: dict | None = None
    where: dict | None = None
    reduce: str = "mean"
    pair_on: list | None = None
    of: list | None = None
    threshold: float = 0.95
    along: str | None = None  # trend: the column the num/den ratio should grow along (e.g. agents)
    not_run: str = ""  # why dpsim has no value for it (printed when points.csv lacks its rows)


def load_published(path: str | Path) -> tuple[list[Item], dict[str, str]]:
    """(items, gap_causes) from published.yaml; a bad entry is one located error."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"{path}: file not found")
    data = read_yaml_mapping(path)
    items = []
    fields = set(Item.__dataclass_fields__)
    for i, entry in enumerate(data.get("items") or []):
        where = f"{path}: items[{i}]"
        if not isinstance(entry, dict):
            raise ExperimentError(f"{where}: expected a mapping")
        unknown = set(entry) - fields
        if unknown:
            raise ExperimentError(f"{where}: unknown key '{sorted(unknown)[0]}'; expected one of: {', '.join(sorted(fields))}")
        for key in ("id", "claim", "published", "metric"):
            if key not in entry:
                raise ExperimentError(f"{where}: {key}: required field is missing")
        if entry["metric"] not in METRICS:
            raise ExperimentError(f"{where}: metric = {entry['metric']!r}: expected one of {', '.join(METRICS)}")
        if entry["metric"] == "trend" and not isinstance(entry.get("along"), str):
            raise ExperimentError(f"{where}: along = {entry.get('along')!r}: metric trend needs the column "
                                  f"the ratio should grow along (e.g. agents)")
        if entry.get("reduce", "mean") not in ("mean", "max", "min"):
            raise ExperimentError(f"{where}: reduce = {entry['reduce']!r}: expected mean, max or min")
        items.append(Item(**entry))
    causes = data.get("gap_causes") or {}
    ids = {it.id for it in items}
    stray = [k for k in causes if k not in ids]
    if stray:
        raise ExperimentError(f"{path}: gap_causes.{stray[0]}: no item with this id")
    return items, causes


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _filter(rows: pd.DataFrame, spec: dict | None) -> pd.DataFrame:
    for column, wanted in (spec or {}).items():
        if column not in rows:
            return rows.iloc[0:0]
        values = rows[column]
        if wanted in ("max", "min"):
            numeric = pd.to_numeric(values, errors="coerce")
            target = numeric.max() if wanted == "max" else numeric.min()
            rows = rows[numeric == target]
            continue
        if column == "mal" and isinstance(wanted, str):
            wanted = units.parse_count(wanted)
        rows = rows[np.array([_same(v, wanted) for v in values], dtype=bool)]  # a mask even when empty
    return rows


def _reduce(values: np.ndarray, how: str) -> float | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    reduce: dict[str, Callable] = {"mean": np.mean, "max": np.max, "min": np.min}
    return float(reduce[how](values))


def item_value(item: Item, points: pd.DataFrame, done: dict[str, float | None]) -> float | None:
    """dpsim's value for one published item (None when points.csv lacks the rows)."""
    if item.metric == "mean_of":
        values = [done.get(i) for i in item.of or []]
        return None if any(v is None for v in values) or not values else float(np.mean(values))
    rows = points[(points.experiment == item.experiment) & (points.status == "ok")]
    if item.metric == "value":
        sub = _filter(rows, item.where)
        return _reduce(pd.to_numeric(sub[item.column], errors="coerce").to_numpy(float), item.reduce) \
            if item.column in sub else None
    if item.metric == "agreement":
        if rows.empty or "snic_utilisation" not in rows:
            return None
        saturated = pd.to_numeric(rows.snic_utilisation, errors="coerce") >= item.threshold
        inside = rows.inside_analytic.astype(str).str.lower() == "true"
        return float((saturated == inside).mean())
    rows = _filter(rows, item.where)
    if rows.empty or item.column not in rows:
        return None
    pairs = _paired_ratios(item, rows)
    if pairs is None:
        return None
    if item.metric == "trend":
        return _growth_share(pairs, item.along)
    ratio = pairs["ratio"].to_numpy(float)
    if item.metric == "reduction":
        ratio = 1.0 - ratio
    return _reduce(ratio, item.reduce)


def _paired_ratios(item: Item, rows: pd.DataFrame) -> pd.DataFrame | None:
    """num/den of `item.column` for every pair of rows that agree on the pairing columns (the pairing
    columns plus a `ratio` column), or None when num and den are the same rows."""
    num, den = _filter(rows, item.num), _filter(rows, item.den)
    if num.index.equals(den.index):
        return None  # e.g. max and min scale are the same rows: only one side was run, nothing to compare
    named = set(item.num or {}) | set(item.den or {})
    pair_on = item.pair_on or [c for c in PAIR_COLUMNS + ["policy"] if c not in named]
    pair_on = [c for c in pair_on if c in rows]
    pair = {"on": pair_on} if pair_on else {"how": "cross"}  # nothing left to pair on: every num with every den
    merged = num[pair_on + [item.column]].merge(den[pair_on + [item.column]], suffixes=("_n", "_d"), **pair)
    n = pd.to_numeric(merged[f"{item.column}_n"], errors="coerce").to_numpy(float)
    d = pd.to_numeric(merged[f"{item.column}_d"], errors="coerce").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["ratio"] = n / d
    return merged[pair_on + ["ratio"]]


def _growth_share(pairs: pd.DataFrame, along: str | None) -> float | None:
    """Share of steps along `along` (each series holding the other pairing columns fixed, in ascending
    `along`) where the ratio grows: 1.0 when it always grows. None without two points in any series."""
    if not along or along not in pairs:
        return None
    pairs = pairs[np.isfinite(pairs["ratio"])].copy()
    pairs[along] = pd.to_numeric(pairs[along], errors="coerce")
    fixed = [c for c in pairs.columns if c not in (along, "ratio") and pairs[c].notna().any()]
    steps = []
    for _, series in (pairs.groupby(fixed, dropna=False) if fixed else [(None, pairs)]):
        ratios = series.sort_values(along)["ratio"].to_numpy(float)
        steps.extend(np.diff(ratios) > 0)
    return float(np.mean(steps)) if steps else None


def validation_rows(points: pd.DataFrame, items: list[Item], causes: dict[str, str],
                    quick: bool | set[str] = False) -> list[dict]:
    """One row per published item. `quick`: True (every experiment ran shrunk) or the set of
    experiments that did (a table merged from quick and full-size runs)."""
    done: dict[str, float | None] = {}
    out = []
    for item in items:
        value = item_value(item, points, done)
        done[item.id] = value
        error = None if value is None else (value - item.published) / item.published
        cause = ""
        if value is None:
            cause = (f"not run: {item.not_run.strip()}" if item.not_run
                     else "no matching points in points.csv (experiment not run?)")
        elif abs(error) > GAP_NOTE_THRESHOLD:
            shrunk = quick is True or (isinstance(quick, set) and item.experiment in quick)
            cause = causes.get(item.id) or ("quick mode: shrunk workload, see above" if shrunk
                                            else "no cause recorded yet in published.yaml gap_causes")
        out.append({"id": item.id, "claim": item.claim, "published": item.published, "dpsim": value,
                    "error": error, "cause": cause})
    return out


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def fit_rows(profile: str | Path) -> list[dict[str, Any]]:
    """The fitted points of a profile written by `dpsim.reproduce.testbed_fit` (its `calibration.fits`): what was
    fitted, to which published JCT, what dpsim gives there and the residual. [] without a record."""
    try:
        data = read_yaml_mapping(Path(profile))
    except ExperimentError:
        return []
    fits = ((data.get("calibration") or {}).get("fits") or {}) if isinstance(data, dict) else {}
    rows = []
    for name, fit in fits.items():
        if not isinstance(fit, dict):
            continue
        points = fit.get("points") or [fit.get("point")]
        published = fit.get("published_jct_s")
        dpsim_jct = fit.get("dpsim_jct_s")
        published = published if isinstance(published, list) else [published]
        dpsim_jct = dpsim_jct if isinstance(dpsim_jct, list) else [dpsim_jct]
        for point, target, got in zip(points, published, dpsim_jct):
            if target and got:
                rows.append({"fit": name, "value": fit.get("value"), "point": str(point), "published_s": float(target),
                             "dpsim_s": float(got), "residual": float(got) / float(target) - 1})
    return rows


def six_point_rows(points: pd.DataFrame) -> list[dict[str, Any]]:
    """Fit protocol v2's six points (Basic and Oracle at each model's fit point) as points.csv has
    them: the published JCT, dpsim's, and the residual."""
    offline = points[points.experiment.astype(str).str.startswith("offline-") & points.status.eq("ok")]
    rows = []
    for policy, targets in (("basic", BASIC_TARGETS), ("oracle", ORACLE_TARGETS)):
        for model, _, agents, target in targets:
            hit = offline[(offline.model == model) & (offline.policy == policy) & (offline.agents == agents)
                          & (offline.mal == 65536)]
            if len(hit):
                got = float(hit.jct_s.iloc[-1])
                rows.append({"model": model, "policy": policy, "agents": agents, "published_s": target,
                             "dpsim_s": got, "residual": got / target - 1})
    return rows


DEVELOPMENT_SET = Path("scenarios/paper/development-ds660b.yaml")


def development_rows(points: pd.DataFrame, path: str | Path = DEVELOPMENT_SET) -> list[dict[str, Any]]:
    """Each cell of the DS 660B development set beside points.csv: JCTs, the Basic/DualPath speed-up
    and DualPath/Oracle, paper and dpsim. [] when the file or the rows are missing."""
    path = Path(path)
    if not path.is_file():
        return []
    data = read_yaml_mapping(path)
    offline = points[(points.model == data["model"]) & (points.layout == data["layout"])
                     & points.experiment.astype(str).str.startswith("offline-") & points.status.eq("ok")]
    rows = []
    for mal, agents, oracle, dual, basic in data["jct_s"]:
        tokens = int(units.parse_count(mal))
        cell = offline[(offline.mal == tokens) & (offline.agents == agents)]
        got = {p: float(cell[cell.policy == p].jct_s.iloc[-1]) for p in ("oracle", "dualpath", "basic")
               if (cell.policy == p).any()}
        if len(got) < 3:
            continue
        rows.append({"mal": mal, "agents": agents, "paper": {"oracle": oracle, "dualpath": dual, "basic": basic},
                     "dpsim": got, "speedup_paper": basic / dual, "speedup_dpsim": got["basic"] / got["dualpath"],
                     "gap_paper": dual / oracle, "gap_dpsim": got["dualpath"] / got["oracle"]})
    return rows


def development_markdown(points: pd.DataFrame) -> list[str]:
    rows = development_rows(points)
    if not rows:
        return []
    lines = ["", "## DS 660B development set (paper's offline JCT figure; diagnosed, not fitted)", "",
             "Goal of fit protocol v2: speed-up within 10 % and DualPath/Oracle within 5 % in every cell.", "",
             "| MAL | agents | Oracle paper / dpsim | DualPath paper / dpsim | Basic paper / dpsim | speed-up paper / dpsim"
             " (error) | DualPath/Oracle paper / dpsim (error) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        p, d = r["paper"], r["dpsim"]
        e1 = r["speedup_dpsim"] / r["speedup_paper"] - 1
        e2 = r["gap_dpsim"] / r["gap_paper"] - 1
        lines.append(f"| {r['mal']} | {r['agents']} | {p['oracle']:,.0f} / {d['oracle']:,.0f} | {p['dualpath']:,.0f} / "
                     f"{d['dualpath']:,.0f} | {p['basic']:,.0f} / {d['basic']:,.0f} | {r['speedup_paper']:.2f} / "
                     f"{r['speedup_dpsim']:.2f} ({e1 * 100:+.0f} %) | {r['gap_paper']:.3f} / {r['gap_dpsim']:.3f} "
                     f"({e2 * 100:+.1f} %) |")
    within = sum(abs(r["speedup_dpsim"] / r["speedup_paper"] - 1) <= 0.10 for r in rows)
    gap_within = sum(abs(r["gap_dpsim"] / r["gap_paper"] - 1) <= 0.05 for r in rows)
    return lines + ["", f"Speed-up within 10 % in {within} of {len(rows)} cells; DualPath/Oracle within 5 % in "
                        f"{gap_within} of {len(rows)}."]


def fit_markdown(profile: str | Path) -> list[str]:
    rows = fit_rows(profile)
    if not rows:
        return []
    lines = ["## Fit protocol", "", f"Fitted points of `{profile}` (the only published numbers the fit may use; "
             "every other number here is a prediction):", "", "| fitted | value | point | published JCT (s) | dpsim JCT (s) | residual |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['fit']} | {r['value']} | {r['point']} | {r['published_s']:,.0f} | {r['dpsim_s']:,.0f} | "
              f"{r['residual'] * 100:+.1f} % |" for r in rows]
    return lines + [""]


def validation_markdown(points: pd.DataFrame, items: list[Item], causes: dict[str, str],
                        source: str = "points.csv", experiments=None) -> str:
    """docs/validation.md: header (what run, which mode), the table, the cache-compute and P/D tables."""
    quick_rows = quick_mask(points)
    # Closed-form experiments give the same numbers in quick mode: they are never "shrunk".
    quick = set(points.loc[quick_rows, "experiment"]) - {"cache-compute"}
    failed = int((points.status != "ok").sum()) if "status" in points else 0
    lines = [
        "# Validation: dpsim against the DualPath paper",
        "",
        f"Generated by `dpsim validation-report {source}` from {len(points)} points"
        f" ({failed} failed); do not edit by hand. Published numbers: the paper's (docs/architecture.md#paper-published-results), stored in"
        " `scenarios/paper/published.yaml` with the causes of gaps.",
        "",
    ]
    if quick:
        lines += [f"**Quick mode** ({', '.join(sorted(quick))}): these points are shrunk (few agents,",
                  "trajectories cut to a few turns, small layouts), so contexts stay short and the runs are",
                  "not storage-bound the way the paper's are. Their numbers show the pipeline works; they are",
                  "not a validation.", ""]
        if experiments:
            lines += ["What quick mode changes, per experiment:", ""]
            lines += [f"- `{e.name}`: {e.quick.note}" for e in experiments if e.name in quick]
            lines += [""]
    profiles = sorted({str(p) for p in points.get("profile", pd.Series(dtype=str)).dropna() if str(p)})
    lines += [f"Calibration profile: {', '.join(profiles) if profiles else 'none (preset defaults)'}.", ""]
    if len(profiles) > 1:  # a table assembled over profiles: say which experiments ran under which
        ran = points.assign(profile=points["profile"].astype(str))
        lines += ["Experiments per profile: " + "; ".join(
            f"`{p}`: {', '.join(sorted(ran[ran.profile == p].experiment.unique()))}" for p in profiles) + ".", ""]
    lines += ["| claim | published | dpsim | error | cause of a gap > 10 % |", "|---|---|---|---|---|"]
    for r in validation_rows(points, items, causes, quick):
        err = "-" if r["error"] is None else f"{r['error'] * 100:+.0f} %"
        cause = " ".join(str(r["cause"]).split()).replace("|", "/")
        lines.append(f"| {r['claim']} | {_num(r['published'])} | {_num(r['dpsim'])} | {err} | {cause} |")
    fit_lines: list[str] = [""]
    for profile in profiles:
        fit_lines += fit_markdown(profile)
    six = six_point_rows(points)
    if six:
        fit_lines += ["Fit protocol v2's six absolute JCTs (64K MAL; Basic and Oracle per model) in this table's "
                  "points, whatever the profile fitted:", "",
                  "| model | system | agents | published JCT (s) | dpsim JCT (s) | residual |", "|---|---|---|---|---|---|"]
        fit_lines += [f"| {r['model']} | {r['policy']} | {r['agents']} | {r['published_s']:,.0f} | {r['dpsim_s']:,.0f} | "
                  f"{r['residual'] * 100:+.1f} % |" for r in six]
        fit_lines += [""]
    lines += fit_lines[:-1] if fit_lines[-1:] == [""] else fit_lines
    cc = points[(points.experiment == "cache-compute") & (points.status == "ok")]
    if not cc.empty and "cache_compute_gb_per_pflop" in cc:
        table = cc.pivot_table(index="model", columns="context_tokens", values="cache_compute_gb_per_pflop",
                               sort=False)
        lines += ["", "## Cache-compute ratio (GB of KV per PFLOP, append 429)", "",
                  "| model | " + " | ".join(f"{int(c):,}" for c in table.columns) + " |",
                  "|---|" + "---|" * len(table.columns)]
        lines += [f"| {m} | " + " | ".join(_num(v) for v in row) + " |" for m, row in table.iterrows()]
    lines += development_markdown(points)
    pdb = points[(points.experiment == "pd-bound") & (points.status == "ok")]
    if not pdb.empty and "pd_ratio" in pdb:
        lo, hi = pdb.pd_lo_analytic.iloc[0], pdb.pd_hi_analytic.iloc[0]
        lines += ["", f"## Bottleneck-free P/D range: analytic [{lo:.3g}, {hi:.3g}] beside the simulation", "",
                  "| layout | P/D | inside analytic range | storage NIC utilisation (all / prefill / decode) |",
                  "|---|---|---|---|"]
        for r in pdb.sort_values("pd_ratio").itertuples():
            lines.append(f"| {r.layout} | {r.pd_ratio:.3g} | {r.inside_analytic} | {_num(r.snic_utilisation)} / "
                         f"{_num(r.snic_utilisation_prefill)} / {_num(r.snic_utilisation_decode)} |")
    return "\n".join(lines) + "\n"

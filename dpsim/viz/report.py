"""`dpsim report FOLDER... [--out report.html]`: one self-contained HTML file (and a Markdown twin)
from run, compare, sweep or capacity output folders, one or several side by side.

Each folder gets a section: scenario and provenance, the answer in one sentence, its tables, its
figures (base64 PNGs inside the HTML) and its caveats. With several folders that hold runs, an
overlay section compares all their runs in the same figures. Figure titles name the model, the
layout and the hardware profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dpsim.metrics.guidance import hardware_profile, profile_label
from dpsim.metrics.results import Result
from dpsim.planning.capacity import binding_constraint, utilisations
from dpsim.planning.seeds import fmt as fmt_interval
from dpsim.scenario.config import Scenario, ScenarioError
from dpsim.scenario.loading import load_scenario

SYSTEMS = ("basic", "dualpath", "oracle")


class ReportError(Exception):
    """A folder that is not dpsim output; the message is one line."""


@dataclass
class Source:
    folder: Path
    kind: str  # run, compare, sweep, capacity
    runs: dict[str, Result] = field(default_factory=dict)
    seeds: dict | None = None  # seeds.json
    rows: pd.DataFrame | None = None  # sweep rows, or capacity trials
    capacity: dict | None = None  # capacity.json
    scenario: Scenario | None = None  # for titles and provenance
    context: str = ""  # "model layout, profile"


# ------------------------------------------------------------------------------------------ load
def _run_folders(folder: Path) -> dict[str, Path]:
    """{label: folder} of the run(s) in `folder`: itself, or its seed-S/ subfolders."""
    if (folder / "summary.json").is_file():
        return {"": folder}
    return {f"seed {p.name.removeprefix('seed-')}": p for p in sorted(folder.glob("seed-*"))
            if (p / "summary.json").is_file()}


def load(folder: str | Path) -> Source:
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: not a folder")
    seeds = json.loads((folder / "seeds.json").read_text()) if (folder / "seeds.json").is_file() else None
    if (folder / "capacity.json").is_file():
        src = Source(folder, "capacity", capacity=json.loads((folder / "capacity.json").read_text()))
        if (folder / "trials.csv").is_file():
            src.rows = pd.read_csv(folder / "trials.csv")
        search = folder / "search.json"
        if search.is_file():
            src.scenario = _scenario(json.loads(search.read_text()).get("scenario"))
    elif (folder / "results.parquet").is_file() or (folder / "results.csv").is_file():
        table = folder / "results.parquet"
        src = Source(folder, "sweep", rows=pd.read_parquet(table) if table.is_file()
                     else pd.read_csv(folder / "results.csv"))
        ci = folder / "results_ci.csv"
        src.seeds = {"table": pd.read_csv(ci)} if ci.is_file() else None
    elif _run_folders(folder):
        src = Source(folder, "run", seeds=seeds)
        for label, path in _run_folders(folder).items():
            result = Result.read(path)
            src.runs[" ".join(x for x in (result.summary["policy"], label) if x)] = result
    else:
        src = Source(folder, "compare", seeds=seeds)
        for system in SYSTEMS:
            for label, path in _run_folders(folder / system).items() if (folder / system).is_dir() else ():
                src.runs[" ".join(x for x in (system, label) if x)] = Result.read(path)
        if not src.runs:
            raise ReportError(f"{folder}: not a dpsim run, compare, sweep or capacity folder (expected "
                              f"summary.json, <system>/summary.json, results.parquet or capacity.json)")
    if src.runs:
        info = next(iter(src.runs.values())).run_info
        src.scenario = _scenario(info.get("scenario"))
        if src.scenario is not None:
            src.scenario.source_path = info.get("scenario_path")
    if src.scenario is None and src.kind == "sweep" and len(src.rows):
        src.scenario = _sweep_scenario(src.rows.iloc[0])
    src.context = _context(src)
    return src


def _scenario(record):
    try:
        return Scenario.model_validate(record) if record else None
    except Exception:  # noqa: BLE001 - a record of an older version: titles say less
        return None


def _sweep_scenario(row):
    try:
        return load_scenario(row["base"], [f"{k}={v}" for k, v in row.items() if "." in k and not pd.isna(v)
                                           and k != "base"])
    except (ScenarioError, KeyError, OSError):
        return None


def _context(src: Source) -> str:
    sc = src.scenario
    if sc is None:
        return "model and profile unknown"
    layout = f"{sc.cluster.prefill_nodes}P{sc.cluster.decode_nodes}D"
    if src.kind == "sweep":
        varied = [c for c in src.rows.columns if c.startswith("cluster.")]
        layout = "layouts varied" if varied else layout
    return f"{sc.model.name} {layout}, {profile_label(sc)}"


# -------------------------------------------------------------------------------------- analysis
def run_binding(result: Result) -> tuple[str, dict[str, float]]:
    """The resource closest to its ceiling over the whole run (as the capacity search measures it;
    decode GPU as mean TPOT over the TPOT SLO)."""
    end = float(result.summary["jct_s"] or 0.0)
    util = utilisations(result, 0.0, max(end, 1e-9))
    tpot, slo = result.summary["tpot_s"]["mean"], result.run_info["scenario"]["slo"]["tpot"]
    if tpot is not None and isinstance(slo, (int, float)) and slo > 0:
        util["decode GPU"] = tpot / slo
    return binding_constraint(util), util


def answer(src: Source) -> str:
    """The folder's answer in one sentence."""
    if src.kind == "capacity":
        parts = []
        for name, doc in src.capacity.items():
            if not isinstance(doc, dict) or "binding" not in doc and "capacity_aps" not in doc:
                continue
            if "by_seed" in doc:
                iv = doc["capacity_aps"]
                parts.append(f"{name} {iv['mean']:.3g} ±{iv['half_width'] or 0:.2g} APS (95 %, {iv['n']} seeds)")
            else:
                parts.append(f"{name} {doc['aps']:.3g} APS (binding: {doc['binding']})")
        slo: dict = next((d.get("slo") or next(iter(d.get("by_seed", {}).values()), {}).get("slo")  # type: ignore[call-overload]
                          for d in src.capacity.values() if isinstance(d, dict)), {}) or {}
        return (f"Within the SLO (TTFT {slo.get('stat', 'mean')} ≤ {slo.get('ttft_s', '?')} s, TPOT ≤ "
                f"{(slo.get('tpot_s') or 0) * 1e3:g} ms) the cluster sustains: " + "; ".join(parts) + ".")
    if src.kind == "sweep":
        ok = src.rows[src.rows.status == "ok"]
        if ok.empty or "jct_s" not in ok:
            return f"{len(ok)} of {len(src.rows)} points ran."
        best, worst = ok.loc[ok.jct_s.idxmin()], ok.loc[ok.jct_s.idxmax()]
        return (f"{len(ok)} of {len(src.rows)} points ran; the shortest JCT is {best.jct_s:.4g} s "
                f"({_config(best)}), the longest {worst.jct_s:.4g} s ({_config(worst)}).")
    first = next(iter(src.runs.values())).summary
    if first["workload_mode"] == "online":
        return ("Online arrivals: SLO attainment " + ", ".join(
            f"{k} {r.summary['slo_attainment']:.3g}" for k, r in src.runs.items()) + "; TTFT p90 " + ", ".join(
            f"{k} {r.summary['ttft_s']['p90']:.3g} s" for k, r in src.runs.items()) + ".")
    jct = {k: r.summary["jct_s"] for k, r in src.runs.items()}
    base = [k for k in jct if k.startswith("basic")]
    intervals = (src.seeds or {}).get("intervals", {})
    if src.kind == "compare" and intervals.get("speedup_vs_basic_jct"):
        n = len(src.seeds["seeds"])
        return (f"{first['agents']} agents on {src.context}, {n} seeds (95 % Student t): mean JCT " + ", ".join(
            f"{k} {fmt_interval(v['jct_s'])} s" for k, v in intervals["systems"].items()) + "; speed-up over "
            "basic, paired by seed: " + ", ".join(f"{k} {fmt_interval(v)}x" for k, v in
                                                 intervals["speedup_vs_basic_jct"].items()) + ".")
    if src.kind == "compare" and base and len(jct) > 1:
        b = jct[base[0]]
        return (f"{first['agents']} agents on {src.context}: " + ", ".join(
            f"{k} {v:.4g} s ({b / v:.3f}x basic)" for k, v in jct.items()) + " job completion time.")
    name, result = next(iter(src.runs.items()))
    binding, util = run_binding(result)
    return (f"{name} ran {first['agents']} agents ({first['turns']} turns) in {first['jct_s']:.4g} s of simulated "
            f"time; TTFT p90 {first['ttft_s']['p90']:.3g} s, SLO attainment {first['slo_attainment']:.3g}; "
            f"the resource closest to its ceiling is the {binding} ({util[binding]:.0%}).")


def _config(row) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items() if "." in str(k) and k not in ("run.seed",)
                     and not pd.isna(v)) or row.get("key", "")


def caveats(src: Source) -> list[str]:
    out = []
    if src.scenario is not None:
        out.append(f"Hardware: {hardware_profile(src.scenario)}.")
    if src.kind in ("run", "compare") and not src.seeds:
        out.append("One seed: no confidence interval (re-run with --seeds 3 for 95 % intervals).")
    for label, r in src.runs.items():
        if r.invariant_failures:
            out.append(f"{label}: invariant checks FAILED ({'; '.join(r.invariant_failures[:2])}).")
        if r.summary.get("stop_reason"):
            out.append(f"{label}: the run stopped early ({r.summary['stop_reason']}).")
    if src.runs:
        out.append("Over time, prefill GPUs are shown as engine occupancy (a prompt in progress, KV waits "
                   "included), not compute; the tables give the compute busy fraction over the run. Decode GPUs "
                   "step whenever they hold a request, so decode shows as the KV held in HBM.")
    if src.kind == "capacity":
        out.append("Each trial stops at the SLO break, so latencies above the SLO are cut off where it broke.")
        for name, doc in src.capacity.items():
            docs = doc.get("by_seed", {}).values() if isinstance(doc, dict) and "by_seed" in doc else [doc]
            for d in docs:
                if isinstance(d, dict):
                    out += [f"{name}: {w}" for w in d.get("warnings", [])] + ([f"{name}: {d['note']}"] if
                                                                                 d.get("note") else [])
    if src.kind == "sweep" and (src.rows.status != "ok").any():
        out.append(f"{int((src.rows.status != 'ok').sum())} sweep points failed (see the table's error column).")
    return list(dict.fromkeys(out))

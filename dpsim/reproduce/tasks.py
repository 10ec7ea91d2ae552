"""Point tasks: module-level functions taking a sweep Point and returning one row of points.csv.

`reproduce_point` dispatches on the point's `task` label (run, capacity, cache_compute, pd_bound);
it is what `dpsim.planning.sweep.run_points(points, task=reproduce_point)` runs in worker processes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from dpsim import api
from dpsim.kernel.simulation import Simulation
from dpsim.metrics.results import run_simulation, ttft_breakdown
from dpsim.planning.capacity import find_capacity, paper_stop_rule, search_size
from dpsim.planning.plan import pd_range
from dpsim.planning.run_estimate import workload_turns
from dpsim.planning.sweep import flatten
from dpsim.reproduce.cache import cache_path, measure_cached, simulation_key
from dpsim.reproduce.experiments import load_point_scenario
from dpsim.scenario.models import ALL_MODELS


def _labels(point) -> dict[str, Any]:
    labels = dict(point.labels)
    labels["options"] = json.loads(labels.get("options") or "{}")
    return labels


def _base_row(point, labels: dict, scenario=None) -> dict:
    row = {"experiment": labels["experiment"], "policy": labels["policy"], "scale": labels.get("scale"),
           "set": ";".join(f"{k}={v}" for k, v in point.overrides)}
    row.update({k: v for k, v in labels.items() if k not in ("options", "task", "profile", "experiment", "policy")})
    if scenario is not None:
        w, cl = scenario.workload, scenario.cluster
        row.update(model=scenario.model.name, layout=f"{cl.prefill_nodes}P{cl.decode_nodes}D",
                   mal=int(w.mal) if not w.trace else None, agents=w.agents, aps=w.aps if w.mode == "online" else None,
                   max_turns=w.max_turns, seed=scenario.run.seed)
    return row


def _point_label(point, labels: dict) -> str:
    """The point as a person reads it in a progress line: experiment, system and its overrides."""
    return " ".join([labels["experiment"], labels["policy"], *(f"{k}={v}" for k, v in point.overrides)])


SUMMARY_COLUMNS = ["jct_s", "turns", "trajectory_jct_s_mean", "slo_attainment", "read_side_fraction_de",
                   "attention_balance_max_over_avg", "stop_reason", "invariants_ok",
                   *(f"{m}_{s}" for m in ("ttft_s", "ttst_s", "tpot_s") for s in ("p50", "p90", "mean"))]
RENAMED_COLUMNS = {"snic_balance_max_over_avg": "snic_balance", "gpu_busy_fraction_prefill": "gpu_busy_prefill",
                   "gpu_busy_fraction_decode": "gpu_busy_decode"}  # summary name -> points.csv name


def _flatten(summary: dict) -> dict:
    """The summary's numbers that points.csv keeps (ttft_s.p50 -> ttft_s_p50; see RENAMED_COLUMNS)."""
    flat = flatten(summary)
    out = {key: flat.get(key) for key in SUMMARY_COLUMNS}
    out.update({new: flat.get(old) for old, new in RENAMED_COLUMNS.items()})
    return out


def snic_balance_series(links: pd.DataFrame, nodes: list[str], window_s: float) -> tuple[list, list]:
    """(window start, max/avg storage-NIC read bytes over `nodes`) per window with any reads."""
    snic = links[(links.kind == "snic.rx") & links.node.isin(nodes)].copy()
    if snic.empty:
        return [], []
    snic["window"] = (snic.t_s // window_s) * window_s
    table = snic.pivot_table(index="window", columns="node", values="bytes_low", aggfunc="sum").reindex(
        columns=nodes).fillna(0.0)
    table = table[table.sum(axis=1) > 0]
    ratio = table.max(axis=1) / table.mean(axis=1)
    return [float(t) for t in table.index], [round(float(r), 6) for r in ratio]


HEARTBEAT_ENV = "DPSIM_REPRODUCE_HEARTBEAT_S"  # wall seconds between progress lines of one simulation


def _heartbeat_s() -> float:
    """Wall seconds between progress lines (`dpsim reproduce --heartbeat`, passed to workers through
    the environment); 0: none."""
    return float(os.environ.get(HEARTBEAT_ENV) or 0)


def _heartbeat(sim, label: str, every_s: float, stop: threading.Event) -> None:
    """Print `label`'s progress to stderr every `every_s` wall seconds until `stop` is set. Runs in a
    daemon thread that only reads two counters, so the simulation's events and results are untouched
    (a SimPy process would add events, and one still pending at the end would move the clock)."""
    t0 = time.perf_counter()
    while not stop.wait(every_s):
        done, total, wall_s = sim.turns_finished, sim.turns_total, time.perf_counter() - t0
        rate = done / wall_s if wall_s > 0 else 0.0
        left_s = (total - done) / rate if rate > 0 else math.inf
        left = "" if math.isinf(left_s) else (f", ~{left_s / 3600:.1f} h left at this rate" if left_s > 5400
                                               else f", ~{left_s / 60:.0f} min left at this rate")
        print(f"[{time.strftime('%H:%M:%S')}] {label}: {sim.env.now:.0f} s simulated, {done}/{total} turns "
              f"({100 * done / max(total, 1):.1f} %, {rate:.0f} turns/s{left})", file=sys.stderr, flush=True)


def _simulate(scenario, label: str = "simulation", **run_options):
    """Run a scenario; return (result, simulation) so tasks can read per-pass records. `run_options`
    go to Simulation.simulate (stop_rule, check_every_s). With DPSIM_REPRODUCE_HEARTBEAT_S set (`dpsim
    reproduce --heartbeat`), long runs print their progress."""
    trajectories = api.build_workload(scenario)
    sim = Simulation(scenario, trajectories, progress=False)
    every_s = _heartbeat_s()
    stop = threading.Event()
    if every_s > 0:
        threading.Thread(target=_heartbeat, args=(sim, label, every_s, stop), daemon=True).start()
    try:
        return run_simulation(sim, api.arrival_times(scenario, trajectories), **run_options), sim
    finally:
        stop.set()


def _scenario(point, options: dict):
    """The point's scenario; option `arrival_window_s` sets an online run's agents to APS x window
    (arrivals keep coming for that long, then every trajectory runs to completion)."""
    import math


    scenario = load_point_scenario(point)
    window = options.get("arrival_window_s")
    if window and scenario.workload.mode == "online" and scenario.workload.aps:
        scenario = api.with_overrides(scenario, workload={"agents": int(math.ceil(scenario.workload.aps * window))})
    return scenario


def estimate_turns(point) -> int:
    """About how many turns the point simulates (0 for closed-form tasks), counted as for the estimate
    before a run (dpsim.planning.run_estimate.workload_turns); for a capacity search, its trials at
    least (`dpsim.planning.capacity.search_size`, the estimate `dpsim plan` prints). What `dpsim
    reproduce --list` prints, so a set's cost is known before it runs."""
    labels = _labels(point)
    if labels["task"] == "capacity":
        scenario = load_point_scenario(point)
        search = {k: v for k, v in _search_options(labels["options"]).items() if k != "stat"}
        trials, turns = search_size(scenario, **search)
        return trials * turns
    if labels["task"] not in ("run", "pd_bound", "steady"):
        return 0
    scenario, measurement = _measurement(point)
    agents = scenario.workload.agents or 500
    if labels["task"] == "steady":  # an upper bound: the run stops at the horizon, mid-trajectory
        agents = _steady_agents(scenario.workload.aps, measurement["horizon_s"])
    return workload_turns(scenario, agents)


def _search_options(opts: dict) -> dict:
    return {k: opts[k] for k in ("aps_lo", "aps_hi", "tolerance", "window_s", "horizon_s", "stat") if k in opts}


def _measurement(point):
    """(scenario, what is measured) of a simulated point, the cache key's two parts; (None, None) for
    closed-form tasks."""
    labels = _labels(point)
    task, opts = labels["task"], labels["options"]
    if task == "run":  # the pre-existing {"window_s": ...} form, so earlier cache entries stay valid
        return _scenario(point, opts), {"window_s": float(opts.get("window_s", 1.0))}
    if task == "capacity":
        return load_point_scenario(point), {"task": "capacity", **_search_options(opts)}
    if task == "pd_bound":
        return _scenario(point, opts), {"task": "pd_bound"}
    if task == "steady":
        return load_point_scenario(point), {"task": "steady", **_steady_options(opts)}
    return None, None


def _steady_options(opts: dict) -> dict:
    # horizon_s is required and checked when the experiment file is loaded
    return {"window_s": float(opts.get("window_s", 150.0)), "horizon_s": float(opts["horizon_s"])}


def point_simulation_key(point) -> str | None:
    """What the point simulates (`dpsim.reproduce.cache.simulation_key`), or None for a closed-form
    point: points with the same key get the same numbers."""
    scenario, measurement = _measurement(point)
    return None if scenario is None else simulation_key(scenario, measurement)


def is_cached(point) -> bool:
    """Whether the point's result is in the cache folder (closed-form points always count as cached)."""
    scenario, measurement = _measurement(point)
    if scenario is None:
        return True
    path = cache_path(scenario, measurement)
    return path is not None and path.is_file()


def run_task(point) -> dict:
    """One simulation: offline JCT or online latencies. Option `series: true` adds the storage-NIC
    balance per window (`window_s`) and the attention balance per prefill pass (for the figures)."""
    labels = _labels(point)
    scenario, measurement = _measurement(point)
    row = _base_row(point, labels, scenario)
    opts = labels["options"]
    window_s = measurement["window_s"]

    def measure() -> dict:
        result, sim = _simulate(scenario, _point_label(point, labels))
        measured = _flatten(result.summary)
        # The series are always kept (cheap), so a cached entry serves points with and without them.
        readers = [n.name for n in (sim.cluster.nodes if sim.switches.dual_path else sim.cluster.prefill_nodes)]
        t, ratio = snic_balance_series(result.links, readers, window_s)
        attention = [round(x, 6) for grp in sim.prefill_groups for x in grp.attention_balance]
        measured["series"] = json.dumps({"t_s": t, "snic_max_over_avg": ratio, "attention_max_over_avg": attention})
        return measured

    measured = measure_cached(scenario, measurement, measure)
    if not opts.get("series"):
        measured.pop("series", None)
    row.update(measured)
    return row


def capacity_task(point) -> dict:
    """The highest APS meeting the SLO (dpsim.planning.capacity.find_capacity), with the options' search range."""
    labels = _labels(point)
    scenario, measurement = _measurement(point)
    search = _search_options(labels["options"])

    def measure() -> dict:
        # A search is several online runs inside dpsim.planning.capacity; with --heartbeat each finished trial
        # is its progress line (the runs themselves are not instrumented).
        label = _point_label(point, labels)
        log = ((lambda line: print(f"[{time.strftime('%H:%M:%S')}] {label}: trial {line.strip()}", file=sys.stderr,
                                   flush=True)) if _heartbeat_s() > 0 else None)
        found = find_capacity(scenario, log=log, **search)
        return {"capacity_aps": found.aps, "capacity_binding": found.binding,
                "capacity_trials": len(found.trials), "capacity_note": found.note}

    row = _base_row(point, labels, scenario)
    row["aps"] = None
    row.update(measure_cached(scenario, measurement, measure))
    return row


def steady_task(point) -> dict:
    """Online latencies at one APS in steady state, measured as the capacity search measures them: Poisson
    arrivals keep coming for `horizon_s`; the run stops on an SLO break or when TTFT is steady
    (dpsim.planning.capacity.paper_stop_rule, no steady verdict before `horizon_s - window_s`), and TTFT, TTST
    and TPOT are those of the last `window_s` (turns still waiting count with their age so far).
    Trajectory JCT is the mean of the trajectories finished by then. (A fixed burst of arrivals run to
    completion never reaches steady state when a trajectory outlives the burst, and understates
    latency at high APS.)"""
    labels = _labels(point)
    scenario, measurement = _measurement(point)
    window_s, horizon_s = measurement["window_s"], measurement["horizon_s"]

    def measure() -> dict:
        aps = scenario.workload.aps
        sc = api.with_overrides(scenario, workload={"mode": "online", "agents": _steady_agents(aps, horizon_s)},
                                run={"max_sim_time": horizon_s})
        rule = paper_stop_rule(sc.slo.ttft, window_s, slo_tpot_s=sc.slo.tpot, min_steady_s=horizon_s - window_s)
        result, _ = _simulate(sc, _point_label(point, labels), stop_rule=rule, check_every_s=window_s / 15)
        turns = result.turns
        t1 = rule.busy[-1][0] if rule.busy else float(turns.t_first_token.max())
        t0 = max(0.0, t1 - window_s)
        turns = turns[turns.t_arrive <= t1]
        waiting = turns[turns.t_first_token.isna()]
        ttft = np.concatenate([turns.ttft_s[turns.t_first_token >= t0].to_numpy(float),
                               (t1 - waiting.t_arrive).to_numpy(float)])
        ttst = turns.ttst_s[turns.t_second_token >= t0].dropna().to_numpy(float)
        tpot = turns.tpot_s[turns.t_finish >= t0].dropna().to_numpy(float)
        out = {"stop_reason": result.summary["stop_reason"] or "horizon", "turns": int(result.summary["turns"]),
               "trajectory_jct_s_mean": result.summary["trajectory_jct_s_mean"],
               "invariants_ok": result.summary.get("invariants_ok"), "window_end_s": round(t1, 3),
               "gpu_busy_prefill": result.summary["gpu_busy_fraction"]["prefill"],
               "gpu_busy_decode": result.summary["gpu_busy_fraction"]["decode"]}
        for name, values in (("ttft_s", ttft), ("ttst_s", ttst), ("tpot_s", tpot)):
            for stat in ("p50", "p90", "mean"):
                out[f"{name}_{stat}"] = (round(float(np.mean(values) if stat == "mean" else
                                                     np.percentile(values, float(stat[1:]))), 9)
                                         if values.size else None)
        out["slo_attainment"] = round(float(np.mean(ttft <= sc.slo.ttft)), 6) if ttft.size else None
        # The paper's TTST (first-to-second-token gap) and the TTFT split (Fig. 12) over the window's
        # first tokens; turns still waiting have no parts yet and are left out of the split.
        in_window = turns[turns.t_first_token >= t0]
        gap = in_window.second_token_gap_s.dropna().to_numpy(float)
        out["second_token_gap_s_p50"] = round(float(np.percentile(gap, 50)), 9) if gap.size else None
        out["second_token_gap_s_mean"] = round(float(np.mean(gap)), 9) if gap.size else None
        for part, value in ttft_breakdown(in_window).items():
            out[f"ttft_{part}"] = value
        return out

    row = _base_row(point, labels, scenario)
    row["agents"] = _steady_agents(scenario.workload.aps, horizon_s)
    row.update(measure_cached(scenario, measurement, measure))
    return row


def _steady_agents(aps: float, horizon_s: float) -> int:
    """Agents of a steady run: Poisson arrivals for the whole horizon (plus one)."""
    import math

    return int(math.ceil(aps * horizon_s)) + 1


def cache_compute_task(point) -> dict:
    """One cell of the cache-compute ratio table: overrides `model` and `context` (tokens)."""
    labels = _labels(point)
    values = dict(point.overrides)
    append = int(float(values.get("append", 429)))
    context = int(float(values["context"]))
    row = _base_row(point, labels)
    row.update(model=values["model"], context_tokens=context, append_tokens=append,
               cache_compute_gb_per_pflop=round(
                   ALL_MODELS[values["model"]].cache_compute_ratio_gb_per_pflop(context, append), 4))
    return row


def storage_utilisation(links: pd.DataFrame, trim: float = 0.1) -> dict:
    """Storage-NIC read bytes over capacity, all nodes together and by role, in the middle of the
    reading period (the first and last `trim` of it cut: ramp-up and drain are not steady state)."""
    snic = links[links.kind == "snic.rx"]
    busy = snic[snic.bytes_low + snic.bytes_high > 0]
    if busy.empty:
        return {"snic_utilisation": None, "snic_utilisation_prefill": None, "snic_utilisation_decode": None}
    t0, t1 = busy.t_s.min(), busy.t_s.max()
    span = t1 - t0
    mid = snic[(snic.t_s >= t0 + trim * span) & (snic.t_s <= t1 - trim * span)]
    if mid.empty:
        mid = snic

    def util(rows):
        cap = (rows.capacity_bytes_per_s * rows.bin_s).sum()
        return round(float((rows.bytes_low + rows.bytes_high).sum() / cap), 6) if cap else None

    return {"snic_utilisation": util(mid),
            "snic_utilisation_prefill": util(mid[mid.node.str.startswith("P")]),
            "snic_utilisation_decode": util(mid[mid.node.str.startswith("D")])}


def pd_bound_task(point) -> dict:
    """A DualPath run made storage-bound (the experiment's overrides make GPUs nearly free), with its
    storage-NIC utilisation and the analytic P/D range of its hardware beside it."""
    labels = _labels(point)
    scenario, measurement = _measurement(point)

    def measure() -> dict:
        result, _ = _simulate(scenario, _point_label(point, labels))
        return {**_flatten(result.summary), **storage_utilisation(result.links)}

    row = _base_row(point, labels, scenario)
    row.update(measure_cached(scenario, measurement, measure))
    lo, hi = pd_range(scenario)
    cl = scenario.cluster
    ratio = cl.prefill_nodes / cl.decode_nodes
    row.update(pd_ratio=round(ratio, 6), pd_lo_analytic=round(lo, 6), pd_hi_analytic=round(hi, 6),
               inside_analytic=bool(lo - 1e-9 <= ratio <= hi + 1e-9))
    return row


TASKS = {"run": run_task, "capacity": capacity_task, "cache_compute": cache_compute_task, "pd_bound": pd_bound_task,
         "steady": steady_task}


def reproduce_point(point) -> dict:
    """The task for any reproduce point (picklable, module level)."""
    return TASKS[dict(point.labels)["task"]](point)


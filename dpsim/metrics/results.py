"""Results of a run: per-turn and per-link frames, the summary, and the run facts.

`summary` holds simulated results only (deterministic for a scenario and seed); wall-clock facts,
versions and the resolved scenario go to `run_info`.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dpsim import __version__
from dpsim.kernel import de_bypass
from dpsim.kernel.entities import ReadSide
from dpsim.kernel.invariants import check_invariants
from dpsim.kernel.loop import sparse_gc
from dpsim.kernel.resources import net
from dpsim.kernel.simulation import Simulation
from dpsim.metrics.guidance import hardware_profile, library_versions

TURN_COLUMNS = ["request", "trajectory", "turn", "input_tokens", "cached_tokens", "output_tokens", "read_side",
                "pe", "de", "t_arrive", "t_dispatch", "t_read_start", "t_read_end", "t_prefill_start",
                "t_first_token", "t_kv_at_decode", "t_second_token", "t_finish", "chunks", "alloc_wait_s",
                "hit_tokens_de"]


@dataclass
class Result:
    """What one simulation produced."""

    summary: dict
    turns: pd.DataFrame
    links: pd.DataFrame
    run_info: dict = field(default_factory=dict)
    invariant_failures: list[str] = field(default_factory=list)

    def write(self, out_dir: str | Path) -> Path:
        """Write the run's files; summary.json goes last, so its presence means the folder is complete
        (`read` and the `--resume` of compare rely on it)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").unlink(missing_ok=True)
        (out / "run.json").write_text(json.dumps(self.run_info, indent=2, sort_keys=True, default=str) + "\n")
        self.turns.to_parquet(out / "turns.parquet", index=False)
        self.links.to_parquet(out / "links.parquet", index=False)
        (out / "summary.json").write_text(json.dumps(self.summary, indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def read(cls, folder: str | Path) -> Result:
        """A run written by `write` (raises FileNotFoundError if the folder is not a complete run)."""
        folder = Path(folder)
        summary = json.loads((folder / "summary.json").read_text())
        run_info = json.loads((folder / "run.json").read_text())
        return cls(summary=summary, turns=pd.read_parquet(folder / "turns.parquet"),
                   links=pd.read_parquet(folder / "links.parquet"), run_info=run_info,
                   invariant_failures=list(run_info.get("invariant_failures") or []))


def _percentiles(values) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=float)  # None becomes NaN
    arr = arr[~np.isnan(arr)]  # the known values, in order (not an element-wise Python loop over a Series)
    if arr.size == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"p50": _r(p50), "p90": _r(p90), "p99": _r(p99), "mean": _r(arr.mean())}


def _r(x: float) -> float:
    """Round for a stable, readable summary (9 significant digits)."""
    return float(f"{float(x):.9g}")


def turns_frame(sim: Simulation) -> pd.DataFrame:
    rows = []
    for r in sim.requests:
        rows.append((r.id, r.trajectory_id, r.turn_index, r.turn.input_tokens, r.turn.cached_tokens,
                     r.turn.output_tokens, r.read_side.value if r.read_side else "", r.pe.index if r.pe else -1, r.de.index if r.de else -1,
                     r.t_arrive, r.t_dispatch, r.t_read_start, r.t_read_end, r.t_prefill_start, r.t_first_token,
                     r.t_kv_at_decode, r.t_second_token, r.t_finish, r.chunks, r.alloc_wait_s, r.hit_tokens_de))
    df = pd.DataFrame(rows, columns=TURN_COLUMNS)
    for col in [c for c in TURN_COLUMNS if c.startswith("t_")]:
        df[col] = df[col].astype(float)
    df["ttft_s"] = df.t_first_token - df.t_arrive
    df["ttst_s"] = df.t_second_token - df.t_arrive  # time to second token, from arrival
    df["second_token_gap_s"] = df.t_second_token - df.t_first_token  # the paper's TTST (P->D hand-off included)
    # TTFT in the paper's four parts (Fig. 12; docs/modeling.md#ttft-breakdown): buffer allocation,
    # reading the hit KV from storage, prefill compute, and the rest (scheduling and queueing).
    df["ttft_alloc_s"] = df.alloc_wait_s
    if sim.switches.kv_read.by_prefill_engine:
        # Read by the prefill engine's loader: from the request's read start until its pass computes, i.e.
        # its own read, the group's other members' reads (lockstep) and the H2D copy are all loading the
        # pass's KV (read one pass ahead: also the wait in DRAM for the pass before to end).
        df["ttft_read_s"] = (df.t_prefill_start - df.t_read_start).fillna(0.0)
    else:
        df["ttft_read_s"] = (df.t_read_end - df.t_read_start).fillna(0.0)
    df["ttft_prefill_s"] = df.t_first_token - df.t_prefill_start
    df["ttft_queue_s"] = df.ttft_s - df.ttft_alloc_s - df.ttft_read_s - df.ttft_prefill_s
    decode_tokens = (df.output_tokens - 2).clip(lower=1)
    df["tpot_s"] = np.where(df.output_tokens > 2, (df.t_finish - df.t_second_token) / decode_tokens, np.nan)
    return df


LINK_COLUMNS = ["link", "node", "kind", "t_s", "bin_s", "bytes_high", "bytes_low", "capacity_bytes_per_s"]


def links_frame(sim: Simulation) -> pd.DataFrame:
    """One row per link and time bin that traffic crossed, bins ascending. Built from each link's bin
    arrays (`Link.bin_arrays`), column by column: 48P96D has ~19 M of them."""
    bin_s = sim.cluster.net.bin_s
    links = [link for link in sim.cluster.net.links if link.bin_index >= 0]  # those with a recorded bin
    if not links:
        return pd.DataFrame([], columns=LINK_COLUMNS)
    bins, high, low = zip(*(link.bin_arrays() for link in links))
    counts = [len(b) for b in bins]
    names = [link.name.partition(".") for link in links]

    def per_link(values: list, dtype: type) -> np.ndarray:  # one value per link, repeated over its bins
        return np.repeat(np.array(values, dtype=dtype), counts)

    return pd.DataFrame({
        "link": per_link([link.name for link in links], object),
        "node": per_link([node for node, _, _ in names], object),
        "kind": per_link([kind for _, _, kind in names], object),
        "t_s": np.concatenate([np.frombuffer(b, dtype=np.int64) for b in bins]) * bin_s,
        "bin_s": np.full(sum(counts), bin_s, dtype=float),
        "bytes_high": np.concatenate([np.frombuffer(h) for h in high]),
        "bytes_low": np.concatenate([np.frombuffer(lo) for lo in low]),
        "capacity_bytes_per_s": per_link([link.capacity for link in links], float),
    })


def storage_nic_balance(links: pd.DataFrame, nodes: list[str]) -> float | None:
    """Traffic-weighted mean over time bins of max/avg storage-NIC read bytes over `nodes`."""
    snic = links[(links.kind == "snic.rx") & links.node.isin(nodes)]
    if snic.empty:
        return None
    table = snic.pivot_table(index="t_s", columns="node", values="bytes_low", aggfunc="sum").reindex(
        columns=nodes).fillna(0.0)
    total = table.sum(axis=1)
    table = table[total > 0]
    if table.empty:
        return None
    ratio = table.max(axis=1) / table.mean(axis=1)
    return _r(float(np.average(ratio, weights=table.sum(axis=1))))


def decode_kv_capacity_bytes(sim: Simulation) -> float:
    """HBM the decode GPUs have for KV in total (capacity less weights and the reserve)."""
    hw = sim.scenario.hardware.gpu
    return float(sum(len(grp.engines) * (hw.hbm_capacity - grp.gpu.weights_bytes_per_gpu - hw.hbm_reserved)
                     for grp in sim.decode_groups))


def decode_hbm_occupancy(turns: pd.DataFrame, kv_bytes_per_token: float, capacity_bytes: float,
                         t0: float, t1: float) -> dict[str, float | None]:
    """Time-weighted mean and peak fraction of decode KV HBM held over [t0, t1]. A turn holds
    (input + output) x KV bytes on its DE from dispatch until it finishes (or t1 if it has not)."""
    held = turns[turns.de >= 0]
    if held.empty or t1 <= t0 or capacity_bytes <= 0:
        return {"mean": None, "peak": None}
    size = (held.input_tokens + held.output_tokens).to_numpy(float) * kv_bytes_per_token
    start = held.t_dispatch.to_numpy(float)
    end = np.nan_to_num(held.t_finish.to_numpy(float), nan=t1)
    times = np.concatenate([start, end])
    deltas = np.concatenate([size, -size])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(deltas[order])
    # Piecewise-constant level between events, clipped to the window.
    seg_start = np.clip(times, t0, t1)
    seg_end = np.clip(np.append(times[1:], t1), t0, t1)
    mean = float(np.sum(level * (seg_end - seg_start)) / (t1 - t0)) / capacity_bytes
    inside = (times <= t1) & (np.append(times[1:], t1) >= t0)
    peak = float(level[inside].max()) / capacity_bytes if inside.any() else 0.0
    return {"mean": _r(mean), "peak": _r(peak)}


def decode_hbm_summary(sim: Simulation, turns: pd.DataFrame, start_s: float, end_s: float) -> dict:
    """Summary keys added for capacity planning (the decode-HBM constraint)."""
    capacity = decode_kv_capacity_bytes(sim)
    return {"decode_hbm_kv_capacity_bytes": _r(capacity),
            "decode_hbm_occupancy": decode_hbm_occupancy(turns, sim.model.kv_bytes_per_token, capacity,
                                                         start_s, end_s)}


TTFT_PARTS = ("queue", "alloc", "read", "prefill")


def ttft_breakdown(turns: pd.DataFrame) -> dict[str, float | None]:
    """Mean seconds of each TTFT part and its share of the mean TTFT (the paper's Fig. 12 split)."""
    if not len(turns):
        return {}
    total = float(turns.ttft_s.mean())
    out: dict[str, float | None] = {}
    for part in TTFT_PARTS:
        mean = float(turns[f"ttft_{part}_s"].mean())
        out[f"{part}_s_mean"] = _r(mean)
        out[f"{part}_share"] = _r(mean / total) if total > 0 else None
    return out


def run_simulation(sim: Simulation, arrivals_s: list[float], stop_rule=None, check_every_s: float = 10.0) -> Result:
    """Simulate `sim` (see `Simulation.simulate`) and collect its `Result` (under the run loop's
    collector policy, `dpsim.kernel.loop.sparse_gc`)."""
    wall_s = sim.simulate(arrivals_s, stop_rule=stop_rule, check_every_s=check_every_s)
    with sparse_gc():
        return collect(sim, wall_s)


def collect(sim: Simulation, wall_s: float) -> Result:
    scenario = sim.scenario
    turns = turns_frame(sim)
    links = links_frame(sim)
    done = turns.dropna(subset=["t_finish"])
    end_s = float(done.t_finish.max()) if len(done) else 0.0
    start_s = float(turns.t_arrive.min()) if len(turns) else 0.0
    span = max(end_s - start_s, 1e-12)
    traj_jct = [sim.trajectory_end[k] - sim.trajectory_start[k] for k in sim.trajectory_end]
    slo = scenario.slo
    meets = (done.ttft_s <= slo.ttft) & (done.tpot_s.fillna(0.0) <= slo.tpot)
    readers = [n.name for n in (sim.cluster.nodes if sim.switches.dual_path else sim.cluster.prefill_nodes)]
    cl = scenario.cluster
    layout = f"{cl.prefill_nodes}P{cl.decode_nodes}D"
    g = cl.gpus_per_node
    attention_balance = [x for grp in sim.prefill_groups for x in grp.attention_balance]
    summary = {
        "policy": scenario.policy.system,
        "switches": {k: getattr(v, "value", v) for k, v in dataclasses.asdict(sim.switches).items() if k != "system"},
        "model": scenario.model.name,
        "layout": layout,
        "workload_mode": scenario.workload.mode,
        "agents": len(sim.trajectories),
        "turns": int(len(done)),
        "turns_started": int(len(turns)),
        "jct_s": _r(end_s),
        "trajectory_jct_s_mean": _r(float(np.mean(traj_jct))) if traj_jct else None,
        "prompt_tokens_per_s": _r(done.input_tokens.sum() / span),
        "gen_tokens_per_s": _r(done.output_tokens.sum() / span),
        "ttft_s": _percentiles(done.ttft_s),
        "ttst_s": _percentiles(done.ttst_s),
        "second_token_gap_s": _percentiles(done.second_token_gap_s),
        "ttft_breakdown": ttft_breakdown(done),
        "tpot_s": _percentiles(done.tpot_s),
        "slo_attainment": _r(meets.mean()) if len(done) else None,
        "snic_balance_max_over_avg": storage_nic_balance(links, readers),
        "attention_balance_max_over_avg": _r(np.mean(attention_balance)) if attention_balance else None,
        "bytes_by_path": {k: _r(v) for k, v in sorted(sim.cluster.net.bytes_by_tag.items())},
        "gpu_busy_fraction": {
            "prefill": _r(sum(grp.busy_s * len(grp.engines) for grp in sim.prefill_groups) / (cl.prefill_nodes * g * span)),
            "decode": _r(sum(grp.busy_s * len(grp.engines) for grp in sim.decode_groups) / (cl.decode_nodes * g * span)),
        },
        # Wall time of prefill passes (waits for KV and collectives included), per prefill GPU.
        "prefill_engine_occupancy": _r(sum(grp.occupied_s * len(grp.engines) for grp in sim.prefill_groups)
                                       / (cl.prefill_nodes * g * span)),
        "stop_reason": sim.stop_reason,
        "read_side_fraction_de": _r((done.read_side == ReadSide.DECODE.value).mean()) if len(done) else None,
    }
    summary.update(decode_hbm_summary(sim, turns, start_s, end_s))
    if sim.dram_tier is not None:  # only when switched on, so other summaries are unchanged
        summary["dram_tier"] = sim.dram_tier.summary(sim.model.kv_bytes_per_token)
    if scenario.policy.de_bypass:
        summary["de_bypass"] = de_bypass.summary(turns, sim.model.kv_bytes_per_token, decode_kv_capacity_bytes(sim))
    summary.update(sim.extra_summary(done))  # what-if options' own figures (docs/whatif.md); none when off
    failures = check_invariants(sim, turns)
    summary["invariants_ok"] = not failures
    run_info = {
        "wall_s": wall_s,
        # Events scheduled, as SimPy counts them (the network's wake-ups included, for comparison with
        # runs before dpsim.kernel.loop), and what the loop actually processed.
        "events_processed": getattr(sim.env, "_eid", None) and next(sim.env._eid),
        "simpy_events": sim.env.counts.simpy_events,
        "network_wakeups": sim.env.counts.network_wakeups,
        "flows": sim.cluster.net.flows_started,
        "rate_recomputations": sim.cluster.net.recomputations,
        "rate_solves_split": sim.cluster.net.split_solves,
        "rate_split_fallbacks": sim.cluster.net.split_fallbacks,
        "rate_flows_solved": sim.cluster.net.flows_solved,  # over rate_recomputations + rate_split_fallbacks solves
        "network_compiled": bool(net.COMPILED),
        "turns_per_wall_s": len(done) / wall_s if wall_s > 0 else None,
        "dpsim_version": __version__,
        "python": platform.python_version(),
        "versions": library_versions(),
        "hardware_profile": hardware_profile(scenario),
        "scenario_path": scenario.source_path,
        "scenario": scenario.model_dump(mode="json"),
        "invariant_failures": failures,
    }
    return Result(summary=summary, turns=turns, links=links, run_info=run_info, invariant_failures=failures)

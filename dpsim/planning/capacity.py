"""SLO capacity: the highest agent arrival rate (APS) a cluster serves within its latency SLO.

    from dpsim import api
    from dpsim.planning import capacity
    sc = api.load_scenario("scenarios/paper/ds660b-2p4d.yaml", ["policy.system=basic"])
    cap = capacity.find_capacity(sc, slo_ttft_s=4.0, slo_tpot_s=0.05)
    cap.aps, cap.binding, cap.trials

One trial = one online run at a fixed APS (docs/architecture.md#paper-workload: Poisson arrivals of agents). Following
the paper's online runs, a trial stops early when TTFT breaks the SLO, or when TTFT is steady
(varies by under 5 % over a 150 s window); see `paper_stop_rule`.

Choices (the spec does not state them; documented in docs/capacity-planning.md):
- "Meets the SLO": the *mean* TTFT and mean TPOT of the turns in the trial's measurement window
  (the last `window_s` simulated seconds) are within the SLO. The paper plots average latencies
  against APS; `slo_stat` switches to p50/p90/p99. Turns still waiting for their first token count
  with their age so far (a lower bound of their TTFT), so a backlog cannot hide.
- Agents per trial: enough Poisson arrivals to keep arriving for the whole horizon, so the offered
  load never drops before the verdict. The horizon (unless given) is one trajectory lifetime at the
  SLO edge (turns x (TTFT SLO + output tokens x TPOT of the lightest trial)) plus one window, at
  least 3 windows: the number of agents in the system only stops growing after one lifetime, and no
  "steady" verdict is accepted before then.
- Search: bracket (halve the lower bound until a trial passes, double the upper until one fails),
  then bisect until the bracket is narrower than `tolerance` APS.
- Binding constraint: at the capacity point (highest passing trial), the measured resource closest
  to its ceiling over the measurement window: storage NIC (read bytes / effective read rate over
  the NICs the policy may read from; writes too), compute NIC (busiest role x direction), prefill
  GPU (busy fraction), decode HBM (time-weighted KV occupancy), decode GPU (TPOT / TPOT SLO: a
  decode engine steps whenever it holds a request, so its busy fraction says nothing of headroom).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from dpsim import api
from dpsim.metrics.results import decode_hbm_occupancy
from dpsim.scenario.config import ModelConfig, Scenario, ScenarioError

__all__ = ["paper_stop_rule", "find_capacity", "CapacityResult", "trial", "utilisations", "binding_constraint",
           "CONSTRAINTS"]

CONSTRAINTS = ("storage NIC", "compute NIC", "prefill GPU", "decode HBM", "decode GPU")
STATS = ("mean", "p50", "p90", "p99")


def _stat(values: np.ndarray, stat: str) -> float | None:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    if stat == "mean":
        return float(values.mean())
    return float(np.percentile(values, float(stat[1:])))


class PaperStopRule:
    """Stop rule of the paper's online runs, with the measurements capacity needs along the way.

    Every check: the TTFT statistic over the turns whose first token came in the last `window_s`
    (plus the ages of turns still waiting). Stop with "slo_break" when it (or TPOT) exceeds the
    SLO; stop with "steady" when, over the last `window_s`, the statistic stayed within
    `steady_tolerance` of its mean (max-min <= tolerance x mean). GPU busy time is sampled at every
    check so utilisations can be measured over the window rather than the whole run."""

    def __init__(self, slo_ttft_s: float, window_s: float = 150.0, steady_tolerance: float = 0.05,
                 slo_tpot_s: float | None = None, stat: str = "mean", min_samples: int = 20,
                 min_steady_s: float = 0.0):
        if stat not in STATS:
            raise ValueError(f"stat = {stat!r}: expected one of {', '.join(STATS)}")
        self.slo_ttft_s, self.slo_tpot_s = slo_ttft_s, slo_tpot_s
        self.window_s, self.steady_tolerance = window_s, steady_tolerance
        self.stat, self.min_samples = stat, min_samples
        self.min_steady_s = min_steady_s  # no "steady" verdict before this (the agent population still grows)
        self.prefill_gpu = None  # the prefill GpuModel, kept to measure compute work after the run
        self.history: list[tuple[float, float]] = []  # (t, TTFT statistic over the window)
        # (t, prefill GPU compute s, prefill pass wall s, decode GPU busy s), summed over GPUs
        self.busy: list[tuple[float, float, float, float]] = []
        # The requests a check may still count, in arrival order: sim.requests[:_taken] have been looked
        # at, and a request whose first token and finish both came before a window's start leaves the
        # list for good (windows only move forward). The same values in the same order as scanning every
        # request, without rescanning the whole look-back (~11 windows) at every check.
        self._live: list = []
        self._taken = 0

    def __call__(self, sim) -> str | None:
        now = sim.env.now
        if self.prefill_gpu is None:
            self.prefill_gpu = sim.prefill_groups[0].gpu
        self.busy.append((now, sum(g.busy_s * len(g.engines) for g in sim.prefill_groups),
                          sum(g.occupied_s * len(g.engines) for g in sim.prefill_groups),
                          sum(g.busy_s * len(g.engines) for g in sim.decode_groups)))
        ttft, tpot = self.samples(sim)
        if len(ttft) < self.min_samples:
            return None
        value = _stat(np.asarray(ttft, float), self.stat)
        self.history.append((now, value))
        if value > self.slo_ttft_s:
            return f"slo_break: TTFT {self.stat} {value:.3g} s > {self.slo_ttft_s:g} s"
        if self.slo_tpot_s is not None and len(tpot) >= self.min_samples:
            tp = _stat(np.asarray(tpot, float), self.stat)
            if tp > self.slo_tpot_s:
                return f"slo_break: TPOT {self.stat} {tp * 1e3:.3g} ms > {self.slo_tpot_s * 1e3:g} ms"
        recent = [v for t, v in self.history if t >= now - self.window_s]
        covered = self.history[0][0] <= now - self.window_s  # a full window of history
        if covered and len(recent) >= 2 and now >= self.min_steady_s:
            mean = float(np.mean(recent))
            if mean > 0 and (max(recent) - min(recent)) <= self.steady_tolerance * mean:
                return f"steady: TTFT {self.stat} within {self.steady_tolerance:.0%} over {self.window_s:g} s"
        return None

    def samples(self, sim) -> tuple[list[float], list[float]]:
        """The TTFT samples (first tokens in the window; turns still waiting, with their age) and the
        TPOT samples (turns finished in the window) of this check, newest request first."""
        now = sim.env.now
        lo = now - self.window_s
        ttft: list[float] = []
        tpot: list[float] = []
        requests = sim.requests  # in arrival order (a request's id is its index)
        self._live.extend(requests[self._taken:])
        self._taken = len(requests)
        # Look back to the newest request that arrived over 10 windows before this one, included (the
        # requests before it are far older than the window).
        oldest = bisect_left(requests, lo - 10 * self.window_s, key=lambda r: r.t_arrive) - 1
        kept = []
        for r in reversed(self._live):  # newest first
            if r.id < oldest:
                break
            if r.t_first_token is not None:
                if r.t_first_token >= lo:
                    ttft.append(r.t_first_token - r.t_arrive)
            else:
                ttft.append(now - r.t_arrive)  # waiting: its TTFT is at least this
            if r.t_finish is not None and r.t_finish >= lo and r.t_second_token is not None \
                    and r.turn.output_tokens > 2:
                tpot.append((r.t_finish - r.t_second_token) / (r.turn.output_tokens - 2))
            if r.t_first_token is None or r.t_first_token >= lo or r.t_finish is None or r.t_finish >= lo:
                kept.append(r)
        kept.reverse()
        self._live = kept
        return ttft, tpot

    def busy_fraction(self, t0: float, t1: float, prefill_gpus: int, decode_gpus: int) -> dict | None:
        """Busy fraction of prefill and decode GPUs between the samples nearest t0 and t1."""
        if len(self.busy) < 2:
            return None
        times = np.array([b[0] for b in self.busy])
        i0 = int(np.searchsorted(times, t0))
        i1 = len(self.busy) - 1 if t1 >= times[-1] else int(np.searchsorted(times, t1))
        i0 = min(i0, i1 - 1) if i1 > 0 else 0
        (ta, pa, oa, da), (tb, pb, ob, db) = self.busy[i0], self.busy[i1]
        if tb <= ta:
            return None
        return {"prefill": (pb - pa) / (prefill_gpus * (tb - ta)),
                "prefill_occupied": (ob - oa) / (prefill_gpus * (tb - ta)),
                "decode": (db - da) / (decode_gpus * (tb - ta))}


def paper_stop_rule(slo_ttft_s: float, window_s: float = 150.0, steady_tolerance: float = 0.05,
                    slo_tpot_s: float | None = None, stat: str = "mean", min_samples: int = 20,
                    min_steady_s: float = 0.0) -> PaperStopRule:
    """The paper's online stop rule: TTFT over the SLO, or TTFT steady within 5 % over 150 s
    (not before `min_steady_s`)."""
    return PaperStopRule(slo_ttft_s, window_s, steady_tolerance, slo_tpot_s, stat, min_samples, min_steady_s)


# --------------------------------------------------------------------------------- measurements
def utilisations(result, t0: float, t1: float, rule: PaperStopRule | None = None) -> dict[str, float]:
    """Measured utilisation of each constraint over [t0, t1], as a fraction of its ceiling."""
    s = result.summary
    scenario = result.run_info["scenario"]
    links = result.links
    span = max(t1 - t0, 1e-9)
    win = links[(links.t_s >= t0) & (links.t_s < t1)]
    prefill = {f"P{i}" for i in range(scenario["cluster"]["prefill_nodes"])}
    decode = {f"D{i}" for i in range(scenario["cluster"]["decode_nodes"])}
    readers = prefill | decode if s["switches"]["dual_path"] else prefill

    def mean_util(rows: pd.DataFrame, nodes: set[str]) -> float:
        """Bytes moved over the nodes' links / (their capacity x window)."""
        rows = rows[rows.node.isin(nodes)]
        if rows.empty:
            return 0.0
        per_link_capacity = rows.groupby("link").capacity_bytes_per_s.first()
        return float((rows.bytes_high + rows.bytes_low).sum() / (per_link_capacity.sum() * span))

    snic_read = mean_util(win[win.kind == "snic.rx"], readers)
    snic_write = mean_util(win[win.kind == "snic.tx"], decode)
    cnic = 0.0
    for nodes in (prefill, decode):
        for direction in ("tx", "rx"):
            cnic = max(cnic, mean_util(win[win.kind.str.startswith("cnic") & win.kind.str.endswith(direction)], nodes))
    dram = max(mean_util(win[win.kind == "dram"], prefill), mean_util(win[win.kind == "dram"], decode))
    g = scenario["cluster"]["gpus_per_node"]
    busy = rule.busy_fraction(t0, t1, len(prefill) * g, len(decode) * g) if rule else None
    if busy is None:
        busy = {**s["gpu_busy_fraction"], "prefill_occupied": s["prefill_engine_occupancy"]}
    prefill_compute = _prefill_compute_fraction(result.turns, rule, t0, t1, len(prefill) * g)
    hbm = decode_hbm_occupancy(result.turns, ModelConfig(**scenario["model"]).spec().kv_bytes_per_token,
                               s["decode_hbm_kv_capacity_bytes"], t0, t1)["mean"] or 0.0
    return {"storage NIC": max(snic_read, snic_write), "compute NIC": cnic,
            "prefill GPU": float(busy["prefill"]) if prefill_compute is None else prefill_compute,
            "prefill GPU occupied": float(busy["prefill_occupied"]),
            "decode HBM": float(hbm), "decode GPU": float(busy["decode"]), "host DRAM": dram,
            "storage NIC read": snic_read, "storage NIC write": snic_write}


def _prefill_compute_fraction(turns: pd.DataFrame, rule: PaperStopRule | None, t0: float, t1: float,
                              gpus: int) -> float | None:
    """GPU-seconds of prefill compute (the GPU model's attention + GEMM time of each prompt whose
    first token came in the window) over the prefill GPUs' time: the prompts' own work, without the
    per-pass overheads and EP slowest-member time that the engines' `busy_s` counters include."""
    gpu = getattr(rule, "prefill_gpu", None)
    if gpu is None:
        return None
    done = turns[(turns.t_first_token >= t0) & (turns.t_first_token < t1)]
    model = gpu.model
    per_token = (model.dense_flops_per_token + model.expert_flops_per_token) / gpu._gemm_rate
    work = sum(gpu.attention_seconds(int(c), int(i - c)) + (i - c) * per_token
               for c, i in zip(done.cached_tokens, done.input_tokens))
    return float(work / (gpus * max(t1 - t0, 1e-9)))


def binding_constraint(util: dict[str, float]) -> str:
    """The constraint closest to its ceiling (all ceilings are 1.0: utilisations are fractions)."""
    return max(CONSTRAINTS, key=lambda k: util.get(k, 0.0))


# ---------------------------------------------------------------------------------------- search
@dataclass
class CapacityResult:
    """The capacity search's answer and every trial it ran."""

    aps: float
    binding: str
    trials: list[dict] = field(default_factory=list)
    utilisations: dict[str, float] = field(default_factory=dict)
    system: str = ""
    scenario: str = ""
    slo: dict = field(default_factory=dict)
    note: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def trials_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in t.items() if k != "utilisations"} |
                             {f"util {k}": v for k, v in t["utilisations"].items()} for t in self.trials])


def trial(scenario: Scenario, aps: float, slo_ttft_s: float, slo_tpot_s: float | None, window_s: float = 150.0,
          horizon_s: float | None = None, steady_tolerance: float = 0.05, stat: str = "mean",
          check_every_s: float | None = None, min_samples: int = 20, min_steady_s: float = 0.0) -> dict:
    """One online run at `aps` under the paper's stop rule; returns its verdict and measurements."""
    horizon_s = horizon_s or 3 * window_s
    sc = _trial_scenario(scenario, aps, horizon_s)
    agents = sc.workload.agents
    rule = paper_stop_rule(slo_ttft_s, window_s, steady_tolerance, slo_tpot_s, stat, min_samples, min_steady_s)
    trajectories = api.build_workload(sc)
    result = api.run(sc, trajectories, progress=False, stop_rule=rule, check_every_s=check_every_s or max(window_s / 15, 1e-3))
    # The verdict is taken at the last check (the stop, or the last check before the horizon).
    t1 = rule.busy[-1][0] if rule.busy else float(result.turns.t_first_token.max())
    t0 = max(0.0, t1 - window_s)
    turns = result.turns[result.turns.t_arrive <= t1]
    if ((turns.t_first_token >= t0) | turns.t_first_token.isna()).sum() < min_samples:
        t0 = 0.0  # too few turns in the last window (a light load): measure the whole run
    window = turns[(turns.t_first_token >= t0) | turns.t_first_token.isna()]
    waiting_age = t1 - window.t_arrive[window.t_first_token.isna()]
    ttft = np.concatenate([window.ttft_s.dropna().to_numpy(float), waiting_age.to_numpy(float)])
    done = turns[turns.t_finish >= t0]
    tpot = done.tpot_s.dropna().to_numpy(float)
    ttft_stat = _stat(ttft, stat)
    tpot_stat = _stat(tpot, stat)
    reason = result.summary["stop_reason"] or (
        "horizon" if result.summary["turns"] < result.summary["turns_started"] else "all turns done")
    meets = (ttft_stat is not None and ttft_stat <= slo_ttft_s and not reason.startswith("slo_break")
             and (slo_tpot_s is None or tpot_stat is None or tpot_stat <= slo_tpot_s))
    util = utilisations(result, t0, t1, rule)
    if slo_tpot_s and tpot_stat is not None:
        # A decode engine with any request steps continuously, so its busy fraction is ~1 at any
        # load; how close decode is to its limit shows as TPOT against the TPOT SLO instead.
        util["decode GPU busy"] = util["decode GPU"]
        util["decode GPU"] = tpot_stat / slo_tpot_s
    return {"aps": aps, "agents": agents, "meets_slo": bool(meets), "stop_reason": reason,
            "sim_time_s": round(t1, 3), f"ttft_{stat}_s": ttft_stat,
            "ttft_p50_s": _stat(ttft, "p50"), "ttft_p90_s": _stat(ttft, "p90"),
            "tpot_s": tpot_stat, "turns_in_window": int(len(window)),
            "wall_s": round(result.run_info["wall_s"], 3), "horizon_s": horizon_s,
            "turns_per_agent": float(np.mean([len(t.turns) for t in trajectories])),
            "output_tokens_per_turn": float(np.mean([u.output_tokens for t in trajectories for u in t.turns])),
            "tool_s_per_turn": float(np.mean([u.think_time_s or 0.0 for t in trajectories for u in t.turns])),
            "utilisations": {k: round(v, 4) for k, v in util.items()}}


def _trial_scenario(scenario: Scenario, aps: float, horizon_s: float) -> Scenario:
    """The online run of one trial: arrivals for the whole horizon (plus one), so the offered load
    never drops before the verdict."""
    agents = int(math.ceil(aps * horizon_s)) + 1
    return api.with_overrides(scenario, workload={"mode": "online", "aps": aps, "agents": agents},
                              run={"max_sim_time": horizon_s})


def search_size(scenario: Scenario, slo_ttft_s: float | None = None, slo_tpot_s: float | None = None,
                aps_lo: float | None = None, aps_hi: float | None = None, tolerance: float = 0.025,
                window_s: float = 150.0, horizon_s: float | None = None) -> tuple[int, int]:
    """(trials, turns per trial) a search will at least run, for the estimate printed before it
    (dpsim.planning.run_estimate): the bracket's two trials plus the bisections down to `tolerance` (more
    when the capacity lies outside the first bracket), each at the bracket's middle rate with the
    later trials' horizon; a turn is counted when it starts before the horizon, each turn taking
    its TTFT and TPOT at the SLO edge plus its tool time."""
    slo_ttft_s = scenario.slo.ttft if slo_ttft_s is None else slo_ttft_s
    slo_tpot_s = scenario.slo.tpot if slo_tpot_s is None else slo_tpot_s
    lo = aps_lo or 0.1
    hi = aps_hi or 2 * lo
    trials = 2 + max(0, math.ceil(math.log2((hi - lo) / tolerance)))
    aps = (lo + hi) / 2
    sample = api.build_workload(_trial_scenario(scenario, aps, 3 * window_s))

    def turn_s(turn) -> float:
        return slo_ttft_s + turn.output_tokens * (slo_tpot_s or 0.0) + (turn.think_time_s or 0.0)

    lifetime_s = float(np.mean([sum(turn_s(u) for u in t.turns) for t in sample])) if sample else 0.0
    horizon_s = horizon_s or max(3 * window_s, lifetime_s + window_s)
    sc = _trial_scenario(scenario, aps, horizon_s)
    trajectories = api.build_workload(sc)
    turns = 0
    for arrival_s, trajectory in zip(api.arrival_times(sc, trajectories), trajectories):
        t = arrival_s
        for turn in trajectory.turns:
            if t >= horizon_s:
                break
            turns += 1
            t += turn_s(turn)
    return trials, turns


def find_capacity(scenario: Scenario, slo_ttft_s: float | None = None, slo_tpot_s: float | None = None,
                  aps_lo: float | None = None, aps_hi: float | None = None, tolerance: float = 0.025,
                  progress: bool = False, window_s: float = 150.0, horizon_s: float | None = None,
                  steady_tolerance: float = 0.05, stat: str = "mean", max_trials: int = 24,
                  log: Callable[[str], None] | None = None, known: dict[float, dict] | None = None,
                  on_trial: Callable[[dict], None] | None = None) -> CapacityResult:
    """Highest APS whose trial meets the SLO (default: the scenario's slo.ttft and slo.tpot), to
    within `tolerance` APS. `aps_lo`/`aps_hi` seed the bracket; without them it starts at 0.1 APS.
    `on_trial(trial)` is called as each trial finishes; `known` ({aps: trial} of an interrupted
    search with the same scenario and options) is used instead of running those trials again: the
    search is deterministic, so it asks for the same rates in the same order."""
    slo_ttft_s = scenario.slo.ttft if slo_ttft_s is None else slo_ttft_s
    slo_tpot_s = scenario.slo.tpot if slo_tpot_s is None else slo_tpot_s
    for name, value in (("aps_lo", aps_lo), ("aps_hi", aps_hi), ("tolerance", tolerance)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ScenarioError(f"{name} = {value!r}: expected a positive number of agents per second")
    if aps_lo is not None and aps_hi is not None and aps_lo >= aps_hi:
        raise ScenarioError(f"aps_lo = {aps_lo:g} must be below aps_hi = {aps_hi:g}")
    if stat not in STATS:
        raise ScenarioError(f"stat = {stat!r}: expected one of {', '.join(STATS)}")
    say = log or ((lambda m: print(m, flush=True)) if progress else (lambda m: None))
    trials: dict[float, dict] = {}
    timing = {"horizon_s": horizon_s, "min_steady_s": 0.0}

    def run_at(aps: float) -> dict:
        aps = round(aps, 6)
        if aps not in trials:
            if len(trials) >= max_trials:
                raise RuntimeError(f"capacity search used its {max_trials} trials without converging")
            earlier = aps in (known or {})
            if earlier:
                trials[aps] = known[aps]
            else:
                trials[aps] = trial(scenario, aps, slo_ttft_s, slo_tpot_s, window_s, timing["horizon_s"],
                                    steady_tolerance, stat, min_steady_s=timing["min_steady_s"])
                if on_trial is not None:
                    on_trial(trials[aps])
            if horizon_s is None and timing["horizon_s"] is None:
                timing.update(_timing(trials[aps], slo_ttft_s, window_s))
            t = trials[aps]
            say(f"  APS {aps:<8g} {'meets' if t['meets_slo'] else 'FAILS'}  TTFT {stat} "
                f"{_fmt(t[f'ttft_{stat}_s'])} s  TPOT {_fmt(t['tpot_s'], 1e3)} ms  ({t['stop_reason']}; "
                f"{t['sim_time_s']:g} sim s, {t['wall_s']:.1f} wall s{'; finished earlier' if earlier else ''})")
        return trials[aps]

    note = ""
    lo = aps_lo or 0.1
    while not run_at(lo)["meets_slo"]:  # bracket below
        if lo < tolerance:
            note = f"no tested rate meets the SLO (lowest {lo:g} APS)"
            break
        lo /= 2
    hi = aps_hi or lo * 2
    if not note:
        doublings = 0
        while run_at(hi)["meets_slo"]:  # bracket above
            lo = hi
            if aps_hi is not None or doublings >= 8:
                note = f"capacity is at least {hi:g} APS (upper bound met the SLO)"
                break
            hi *= 2
            doublings += 1
        while not note and hi - lo > tolerance:  # bisect
            mid = (lo + hi) / 2
            if run_at(mid)["meets_slo"]:
                lo = mid
            else:
                hi = mid
    warnings = []
    if horizon_s is not None and trials:
        lifetime_s = _timing(next(iter(trials.values())), slo_ttft_s, window_s)["min_steady_s"]
        if horizon_s < lifetime_s:
            warnings.append(
                f"the horizon ({horizon_s:g} s) is shorter than one trajectory lifetime at the SLO edge "
                f"(~{lifetime_s:.0f} s): contexts never grow to their full length and the agent population "
                f"is still growing, so the capacity is optimistic; drop --horizon to use the lifetime")
    passing = [t for t in trials.values() if t["meets_slo"]]
    best = max(passing, key=lambda t: t["aps"]) if passing else min(trials.values(), key=lambda t: t["aps"])
    aps = best["aps"] if passing else 0.0
    return CapacityResult(aps=aps, binding=binding_constraint(best["utilisations"]),
                          trials=sorted(trials.values(), key=lambda t: t["aps"]), utilisations=best["utilisations"],
                          system=scenario.policy.system, scenario=scenario.name,
                          slo={"ttft_s": slo_ttft_s, "tpot_s": slo_tpot_s, "stat": stat, "window_s": window_s,
                               "tolerance_aps": tolerance}, note=note, warnings=warnings)


def _timing(first: dict, slo_ttft_s: float, window_s: float) -> dict:
    """Horizon of the trials after the first. The number of agents in the system only stops growing
    after one trajectory lifetime; near capacity a turn takes up to TTFT_SLO + output x TPOT (the
    first, lightest trial's TPOT), so a verdict needs that lifetime plus one measurement window."""
    tpot = first["tpot_s"] or 0.0
    lifetime_s = first["turns_per_agent"] * (slo_ttft_s + first["output_tokens_per_turn"] * tpot
                                             + first["tool_s_per_turn"])
    return {"horizon_s": max(3 * window_s, lifetime_s + window_s), "min_steady_s": lifetime_s}


def _fmt(value, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.3g}"

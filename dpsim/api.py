"""The public Python API, shared by the CLI, sweeps and notebooks.

    from dpsim import api
    scenario = api.load_scenario("scenarios/quickstart.yaml", ["policy.system=basic"])
    result = api.run(scenario)            # -> Result(summary, turns, links, run_info)
    result.summary["jct_s"], result.turns.ttft_s.describe()
    results = api.compare(scenario, ["basic", "dualpath", "oracle"])
"""

from __future__ import annotations

import numpy as np

from dpsim.kernel import guard
from dpsim.kernel import progress as bar
from dpsim.kernel.simulation import Simulation, SimulationError
from dpsim.metrics.results import Result, run_simulation
from dpsim.scenario.config import Scenario, ScenarioError, ToolLatencySource
from dpsim.scenario.cost import run_cost
from dpsim.scenario.loading import load_scenario
from dpsim.workload.phases import apply_phase_profile
from dpsim.workload.readers import TraceError, apply_workload_options, detect_format, read_trace
from dpsim.workload.synthetic import generate_trajectories
from dpsim.workload.tool_latency import with_claude_code_gaps
from dpsim.workload.trajectory import Trajectory, Turn

__all__ = ["Scenario", "ScenarioError", "SimulationError", "load_scenario", "build_workload", "arrival_times",
           "run", "compare", "with_overrides", "check_trace_file"]


def build_workload(scenario: Scenario) -> list[Trajectory]:
    """The scenario's trajectories: a trace (workload.trace) or the synthetic set (workload.mal)."""
    w = scenario.workload
    seed = scenario.run.seed
    if w.trace:
        trajectories = apply_workload_options(
            read_trace(_resolve_trace(scenario)), agents=w.agents, aps=None, time_scale=w.time_scale, seed=seed,
            max_context=int(w.max_context) if w.max_context else None)
    else:
        trajectories = generate_trajectories(int(w.mal), w.agents or 500, seed, w.append_scale, w.gen_scale,
                                             think_time_s=w.tool_latency)
        if w.tool_latency_source is ToolLatencySource.CLAUDE_CODE:  # docs/whatif.md#5-tool-latency-and-larger-working-sets
            trajectories = with_claude_code_gaps(trajectories, seed, w.tool_latency_max)
    if w.max_turns:
        for t in trajectories:
            t.turns = t.turns[: w.max_turns]
    if w.phase_profile is not None:  # docs/whatif.md#4-adaptive-prefilldecode-roles
        p = w.phase_profile
        apply_phase_profile(trajectories, p.split, p.first_append_scale, p.first_gen_scale, p.second_append_scale,
                            p.second_gen_scale, max_context_tokens=int(w.mal))
    return trajectories


def _resolve_trace(scenario: Scenario) -> str:
    """A relative trace path is looked up beside the scenario file first, then from the current directory."""
    from pathlib import Path

    path = Path(scenario.workload.trace)
    if not path.is_absolute() and scenario.source_path:
        beside = Path(scenario.source_path).parent / path
        if beside.exists():
            return str(beside)
    if not path.exists():
        raise ScenarioError(f"{scenario.source_path or '<scenario>'}: workload.trace = '{path}': file not found")
    return str(path)


def check_trace_file(scenario: Scenario) -> str | None:
    """The detected format of the scenario's trace file (None without one); a ScenarioError naming
    the scenario, the field and the file if it is missing, not a file, or in no known format."""
    if not scenario.workload.trace:
        return None

    path = _resolve_trace(scenario)
    try:
        return detect_format(path)
    except TraceError as exc:
        raise ScenarioError(f"{scenario.source_path or '<scenario>'}: workload.trace = "
                            f"'{scenario.workload.trace}': {exc}") from None


def arrival_times(scenario: Scenario, trajectories: list[Trajectory]) -> list[float]:
    """Offline: everyone at t=0. Online: Poisson at workload.aps, or the trace's own arrival times."""
    w = scenario.workload
    if w.mode == "offline":
        return [0.0] * len(trajectories)
    if w.aps:
        rng = np.random.default_rng(scenario.run.seed + 7919)
        return list(np.cumsum(rng.exponential(1.0 / w.aps, len(trajectories))) - 0.0)
    times = [t.arrival_s for t in trajectories]
    if any(t is None for t in times):
        raise ScenarioError("workload.mode: online needs workload.aps, or a trace with arrival times")
    first = min(times)
    return [(t - first) for t in times]


def run(scenario: Scenario, trajectories: list[Trajectory] | None = None, progress: bool | None = None,
        stop_rule=None, check_every_s: float = 10.0, label: str = "") -> Result:
    """Simulate one scenario. `stop_rule(sim) -> str | None`, asked every `check_every_s` simulated
    seconds, may end the run early (its reason lands in summary["stop_reason"]). `progress`: a bar
    on stderr (turns, simulated time, ETA; see dpsim.kernel.progress), None: run.progress, else only on a
    terminal; `label` names the run on the bar (default: its policy.system)."""
    trajectories = build_workload(scenario) if trajectories is None else trajectories
    sim = Simulation(scenario, trajectories, progress=False)
    if bar.wanted(progress, scenario):
        bar.attach(sim, label or scenario.policy.system)
    arrivals_s = arrival_times(scenario, trajectories)
    guard.install(sim, arrivals_s)
    result = run_simulation(sim, arrivals_s, stop_rule=stop_rule, check_every_s=check_every_s)
    cost = run_cost(scenario, result.turns, result.summary["agents"])
    if cost is not None:  # only with a cost: section, so summaries without one are unchanged
        result.summary["cost"] = cost
    return result



def with_overrides(scenario: Scenario, **sections) -> Scenario:
    """A copy of `scenario` with fields replaced, e.g. with_overrides(s, policy={"system": "basic"})."""
    data = scenario.model_dump(mode="python", exclude_none=False)
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    copy = Scenario.model_validate(data)
    copy.source_path = scenario.source_path
    return copy


def compare(scenario: Scenario, policies: list[str], progress: bool | None = None) -> dict[str, Result]:
    """Run the same scenario and workload under each policy.system."""
    trajectories = build_workload(scenario)
    return {p: run(with_overrides(scenario, policy={"system": p}), trajectories, progress) for p in policies}


__all__ += ["Trajectory", "Turn"]

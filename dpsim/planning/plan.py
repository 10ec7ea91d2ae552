"""P/D planning: the analytic bottleneck-free P/D range beside the simulated capacity of layouts.

    from dpsim.planning import plan
    plan.pd_range(scenario)                        # docs/architecture.md#paper-data-paths: (1/7, 7/2) for the H800 preset
    p = plan.plan("scenarios/quickstart.yaml", nodes=[2, 3], target_aps=4.0, window_s=20)
    p.table, p.recommended

Every layout (P prefill + D decode nodes, P + D = N for each N asked) gets an SLO capacity search
(`dpsim.planning.capacity.find_capacity`); the layouts run as a sweep, so they go in parallel. With a target
APS the recommendation is the smallest N with a layout that meets it (the highest-capacity one of
that N); without one, the layout with the most APS per node. With a `cost:` section the layouts are
also priced, and with a target ranked by the price of serving it with copies of the layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dpsim.planning.capacity import find_capacity
from dpsim.planning.sweep import Point, run_points, scenario_for
from dpsim.scenario.config import Scenario, ScenarioError
from dpsim.scenario.cost import scenario_usd_per_hour
from dpsim.scenario.loading import load_scenario

__all__ = ["bottleneck_free_pd_range", "pd_range", "layouts", "plan", "Plan", "capacity_task"]


def bottleneck_free_pd_range(g: int, s: float, memory_bw: float, nic_bw: float) -> tuple[float, float]:
    """The bottleneck-free range (docs/architecture.md#paper-data-paths):
    s/(g-s) <= P/D <= min{(g-2s)/s, (g-s)/(2s), (M/(B s) - 3)/2}, with g GPUs (one compute NIC of
    bandwidth B each) per node, storage bandwidth s x B and host memory M."""
    if not 0 < s < g / 2:
        raise ValueError(f"s = {s:g} (storage bandwidth in compute NICs) must be in (0, g/2 = {g / 2:g})")
    lo = s / (g - s)
    hi = min((g - 2 * s) / s, (g - s) / (2 * s), (memory_bw / (nic_bw * s) - 3) / 2)
    return lo, hi


def pd_range(scenario: Scenario) -> tuple[float, float]:
    """The bottleneck-free P/D range of a scenario's hardware (line rates)."""
    hw = scenario.hardware
    nic = hw.compute_nic.bandwidth
    s = hw.storage_nic.count * hw.storage_nic.bandwidth / nic
    return bottleneck_free_pd_range(scenario.cluster.gpus_per_node, s, hw.host.memory_bandwidth, nic)


def layouts(total_nodes: int) -> list[tuple[int, int]]:
    """Every (P, D) with P + D = total_nodes, P, D >= 1."""
    return [(p, total_nodes - p) for p in range(1, total_nodes)]


CAPACITY_LABELS = ("slo_ttft_s", "slo_tpot_s", "aps_lo", "aps_hi", "tolerance", "window_s", "horizon_s", "stat")


def capacity_task(point: Point) -> dict:
    """Sweep task: the SLO capacity of a point; capacity options ride in the point's labels."""
    options = {k: v for k, v in point.labels if k in CAPACITY_LABELS and v is not None}
    result = find_capacity(scenario_for(point), **options)
    row = {"capacity_aps": result.aps, "binding": result.binding, "trials": len(result.trials),
           "note": result.note}
    row.update({f"util {k}": v for k, v in result.utilisations.items()})
    return row


@dataclass
class Plan:
    """Capacity of every layout and the recommendation."""

    table: pd.DataFrame
    pd_range: tuple[float, float]
    recommended: dict | None
    target_aps: float | None = None
    notes: list[str] = field(default_factory=list)
    cheapest: dict | None = None  # with a cost: section and a target: the lowest usd_per_hour_at_target

    def to_dict(self) -> dict:
        return {"pd_range": list(self.pd_range), "recommended": self.recommended, "target_aps": self.target_aps,
                "cheapest": self.cheapest, "layouts": self.table.to_dict("records"), "notes": self.notes}


def plan(scenario_path: str, nodes: list[int], target_aps: float | None = None, sets: list[str] | tuple = (),
         jobs: int = 1, executor: str = "local", progress: bool = False, **capacity_options) -> Plan:
    """SLO capacity of every P/D layout of each total node count in `nodes`; see the module doc."""
    base = load_scenario(scenario_path, list(sets))  # located errors before anything runs
    if not nodes or any((not isinstance(n, int)) or n < 2 for n in nodes):
        raise ScenarioError(f"nodes = {nodes!r}: expected node counts of at least 2 (one prefill, one decode)")
    if target_aps is not None and not target_aps > 0:
        raise ScenarioError(f"target_aps = {target_aps!r}: expected a positive number of agents per second")
    unknown = set(capacity_options) - set(CAPACITY_LABELS)
    if unknown:
        raise TypeError(f"unknown capacity option(s): {', '.join(sorted(unknown))}")
    labels = tuple(sorted(capacity_options.items()))
    points = [Point(scenario_path, tuple((k.split("=", 1)[0], k.split("=", 1)[1]) for k in sets) +
                    (("cluster.prefill_nodes", str(p)), ("cluster.decode_nodes", str(d))), labels)
              for n in sorted(set(nodes)) for p, d in layouts(n)]
    frame = run_points(points, task=capacity_task, jobs=jobs, executor=executor, progress=progress)
    lo, hi = pd_range(base)
    table = pd.DataFrame({
        "prefill_nodes": frame["cluster.prefill_nodes"].astype(int),
        "decode_nodes": frame["cluster.decode_nodes"].astype(int)})
    table["nodes"] = table.prefill_nodes + table.decode_nodes
    table["pd_ratio"] = table.prefill_nodes / table.decode_nodes
    table["in_analytic_range"] = (table.pd_ratio >= lo - 1e-9) & (table.pd_ratio <= hi + 1e-9)
    for col in ("capacity_aps", "binding", "note", "status", "error"):
        table[col] = frame[col] if col in frame else None
    table["aps_per_node"] = table.capacity_aps / table.nodes
    if base.cost is not None:
        _add_cost(table, base, target_aps)
    notes = [f"{r.prefill_nodes}P{r.decode_nodes}D failed: {r.error}" for r in table.itertuples() if r.status != "ok"]
    ok = table[table.status == "ok"]
    recommended = None
    if target_aps is not None:
        meeting = ok[ok.capacity_aps >= target_aps]
        if len(meeting):
            smallest = meeting[meeting.nodes == meeting.nodes.min()]
            recommended = smallest.sort_values("capacity_aps", ascending=False).iloc[0].to_dict()
        else:
            notes.append(f"no layout of {sorted(set(nodes))} nodes reaches {target_aps:g} APS; try more nodes")
    elif len(ok):
        recommended = ok.sort_values(["aps_per_node", "capacity_aps"], ascending=False).iloc[0].to_dict()
    cheapest = None
    if "usd_per_hour_at_target" in table and table.usd_per_hour_at_target.notna().any():
        cheapest = table.loc[table.usd_per_hour_at_target.idxmin()].to_dict()
    return Plan(table=table, pd_range=(lo, hi), recommended=recommended, target_aps=target_aps, notes=notes,
                cheapest=cheapest)


def _add_cost(table: pd.DataFrame, base: Scenario, target_aps: float | None) -> None:
    """Cost columns (dpsim/scenario/cost.py): each layout's price per hour and, with a target APS, the price of
    serving it with whole copies of the layout (ceil(target / capacity) copies, each at its capacity
    or below), per hour and per agent trajectory (price per hour / (target APS x 3600 s))."""
    import math


    table["usd_per_hour"] = [scenario_usd_per_hour(base, p, d) for p, d in zip(table.prefill_nodes,
                                                                                 table.decode_nodes)]
    if target_aps is None:
        return
    ok = (table.status == "ok") & (table.capacity_aps > 0)
    copies = [math.ceil(target_aps / c - 1e-9) if good else None for c, good in zip(table.capacity_aps, ok)]
    table["copies_for_target"] = pd.array(copies, dtype="Int64")
    table["usd_per_hour_at_target"] = table.copies_for_target.astype(float) * table.usd_per_hour
    table["usd_per_trajectory_at_target"] = table.usd_per_hour_at_target / (target_aps * 3600)

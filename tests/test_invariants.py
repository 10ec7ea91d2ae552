"""Each end-of-run invariant (dpsim/kernel/invariants.py) holds on a clean run and fires when its property
is broken: a check that cannot fail would prove nothing."""

import pytest
import simpy

from dpsim import api
from dpsim.kernel.invariants import check_invariants
from dpsim.kernel.resources import net
from dpsim.kernel.resources.net import Network, TrafficClass
from dpsim.kernel.simulation import Simulation
from dpsim.metrics.results import run_simulation


@pytest.fixture(scope="module")
def finished():
    sc = api.load_scenario("scenarios/quickstart.yaml", ["workload.agents=6", "workload.max_turns=5",
                                                         "policy.system=dualpath"])
    trajectories = api.build_workload(sc)
    sim = Simulation(sc, trajectories, progress=False)
    result = run_simulation(sim, api.arrival_times(sc, trajectories))
    return sim, result


def test_clean_run_has_no_failures(finished):
    sim, result = finished
    assert check_invariants(sim, result.turns) == []


def test_an_unfinished_turn_is_reported(finished):
    sim, result = finished
    turns = result.turns.copy()
    turns.loc[turns.index[0], "t_finish"] = float("nan")
    assert any("turn conservation" in f for f in check_invariants(sim, turns))


def test_bytes_not_matching_the_dispatched_hits_are_reported(finished):
    sim, result = finished
    tags = sim.cluster.net.bytes_by_tag
    saved = tags["storage_read_de_side"] if "storage_read_de_side" in tags else None
    tags["storage_read_de_side"] = (saved or 0.0) + 4096.0
    try:
        assert any("byte conservation" in f for f in check_invariants(sim, result.turns))
    finally:
        if saved is None:
            del tags["storage_read_de_side"]
        else:
            tags["storage_read_de_side"] = saved


def test_time_running_backwards_is_reported(finished):
    sim, result = finished
    turns = result.turns.copy()
    turns.loc[turns.index[0], "t_first_token"] = turns.loc[turns.index[0], "t_arrive"] - 1.0
    assert any("causality" in f for f in check_invariants(sim, turns))


def _run_two_flows(monkeypatch, bad_solver):
    def solve_badly(links, flows, share, *free):  # as fluid.solve_in_place: rates left in flow.solved
        for flow, rate in bad_solver(links, flows, share).items():
            flow.solved = rate
        return False

    monkeypatch.setattr(net, "solve_in_place", solve_badly)
    env = simpy.Environment()
    network = Network(env)
    link = network.add_link("l", 10e9)
    network.transfer([link], 1e9, TrafficClass.HIGH)
    network.transfer([link], 1e7, TrafficClass.LOW)
    env.run()
    return network.violations


def test_a_link_above_capacity_is_reported(monkeypatch):
    violations = _run_two_flows(monkeypatch, lambda links, flows, share: {f: 8e9 for f in flows})
    assert any("> capacity" in v for v in violations)


def test_low_class_starved_below_its_guarantee_is_reported(monkeypatch):
    def starve_low(links, flows, share):
        return {f: (10e9 - 1e6 if f.traffic_class == TrafficClass.HIGH else 1e6) for f in flows}

    violations = _run_two_flows(monkeypatch, starve_low)
    assert any("low class starved" in v for v in violations)


@pytest.mark.parametrize("cut_s", [3.0, 7.5, 12.0, 20.0])
def test_a_run_cut_mid_decode_keeps_every_turn_causal(cut_s):
    """Decode finishes run on a step-count clock; a request that joins while a segment runs gets its
    second token from the next segment only. A run cut by run.max_sim_time while requests wait to join
    shows it: no turn may have its second token before its KV reached the decode node."""
    sc = api.load_scenario("scenarios/quickstart.yaml", ["workload.agents=16", "policy.system=dualpath",
                                                         f"run.max_sim_time={cut_s}s"])
    trajectories = api.build_workload(sc)
    sim = Simulation(sc, trajectories, progress=False)
    result = run_simulation(sim, api.arrival_times(sc, trajectories))
    assert check_invariants(sim, result.turns) == []
    turns = result.turns.dropna(subset=["t_second_token", "t_kv_at_decode"])
    assert len(turns) > 0
    assert (turns.t_second_token >= turns.t_kv_at_decode).all()


def test_a_time_bin_above_capacity_is_reported():
    sc = api.load_scenario("scenarios/quickstart.yaml", ["workload.agents=6", "workload.max_turns=5"])
    trajectories = api.build_workload(sc)
    sim = Simulation(sc, trajectories, progress=False)
    result = run_simulation(sim, api.arrival_times(sc, trajectories))
    assert check_invariants(sim, result.turns) == []
    link = max(sim.cluster.net.links, key=lambda link: len(link.bins))
    first = min(link.bins)
    assert first < link.bin_index  # a bin before the one being added to
    link.add_to_bin(first, 2 * link.capacity * sim.cluster.net.bin_s, 0.0)
    failures = check_invariants(sim, result.turns)
    assert any(f.startswith(f"capacity: {link.name} moved") and f"in bin {first}," in f for f in failures)

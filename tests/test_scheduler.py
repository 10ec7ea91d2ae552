"""Each rule of the DualPath scheduler (docs/architecture.md#paper-scheduler), on plain engine views."""

import random

import pytest
from engine_stubs import E, G, Node

from dpsim.kernel.policies.scheduler import DualPathScheduler, RoundRobinScheduler


def sched(**kw):
    return DualPathScheduler(alpha_tokens=kw.get("alpha", 100), beta_tokens=kw.get("beta", 1000))


def test_overloaded_pe_gets_nothing():
    engines = [E(0, tok=1001), E(1, tok=5000)]
    assert sched().pick_prefill(engines) is None


def test_pe_prefers_short_read_queue_over_smaller_tok():
    busy_node, idle_node = Node(read_queue_tokens=500), Node(read_queue_tokens=50)
    engines = [E(0, tok=10, node=busy_node), E(1, tok=900, node=idle_node)]
    assert sched().pick_prefill(engines).index == 1


def test_pe_smallest_tok_among_short_queues_then_among_rest():
    short = Node(read_queue_tokens=0)
    engines = [E(0, tok=300, node=short), E(1, tok=200, node=short), E(2, tok=5, node=Node(10_000))]
    assert sched().pick_prefill(engines).index == 1
    all_long = [E(0, tok=300, node=Node(500)), E(1, tok=200, node=Node(600))]
    assert sched().pick_prefill(all_long).index == 1


def test_de_group_with_smallest_total_tok():
    g0 = [E(0, tok=500), E(1, tok=500)]
    g1 = [E(2, tok=100), E(3, tok=100)]
    assert sched().pick_decode([G(g0), G(g1)], tokens=10, hbm_bytes=1).index in (2, 3)


def test_de_fewest_requests_under_z():
    # Z = 1.05 * (100 + 300) / 3 = 140: engines 0 and 1 stay under Z; engine 1 has fewer requests.
    group = [E(0, tok=0, seq=5), E(1, tok=20, seq=1), E(2, tok=280, seq=0)]
    assert sched().pick_decode([G(group)], tokens=100, hbm_bytes=1).index == 1


def test_de_smallest_tok_when_all_exceed_z_and_hbm_required():
    group = [E(0, tok=50, seq=0, hbm_free=0), E(1, tok=60, seq=9), E(2, tok=70, seq=0)]
    # Z = 1.05 * (1000 + 180) / 3 = 413: everyone exceeds it; engine 0 has no HBM; smallest tok is 1.
    assert sched().pick_decode([G(group)], tokens=1000, hbm_bytes=1).index == 1
    no_hbm = [E(0, hbm_free=0), E(1, hbm_free=0)]
    assert sched().pick_decode([G(no_hbm)], tokens=1, hbm_bytes=1) is None


def _pick_decode_by_the_rules(groups, tokens, hbm_bytes, z_slack=1.05):
    """The DE rule written as the paper states it (docs/architecture.md#paper-scheduler), with lists."""
    group = min(groups, key=lambda g: (sum(e.tok for e in g), g[0].index))
    with_hbm = [e for e in group if e.hbm_free >= hbm_bytes]
    if not with_hbm:
        return None
    z = z_slack * (tokens + sum(e.tok for e in group)) / len(group)
    under_z = [e for e in with_hbm if e.tok + tokens <= z]
    if under_z:
        return min(under_z, key=lambda e: (e.seq, e.tok, e.index))
    return min(with_hbm, key=lambda e: (e.tok, e.index))


def test_de_choice_matches_the_rules_on_random_groups():
    """The scheduler's one-pass DE search picks the same engine as the rules written with lists, on
    random groups with many ties in tok and seq, some DEs without HBM and some groups all over Z."""
    rng = random.Random(7)
    for _ in range(3000):
        index = iter(range(10_000))
        groups = [[E(next(index), tok=rng.choice([0, 10, 20, 30, 500]), seq=rng.randint(0, 3),
                     hbm_free=rng.choice([0, 1, 1, 1])) for _ in range(rng.randint(1, 6))]
                  for _ in range(rng.randint(1, 4))]
        rng.shuffle(groups)
        tokens = rng.choice([1, 10, 40, 400])
        assert sched().pick_decode([G(g) for g in groups], tokens, hbm_bytes=1) is _pick_decode_by_the_rules(groups, tokens, 1)


def test_read_side_is_the_shorter_queue():
    pe, de = E(0, node=Node(500)), E(1, node=Node(100))
    assert sched().pick_read_side(pe, de) == "D"
    assert sched().pick_read_side(E(0, node=Node(10)), de) == "P"
    no_dual = DualPathScheduler(100, 1000, dual_path=False)
    assert no_dual.pick_read_side(pe, de) == "P"


def test_round_robin_cycles_and_skips_full_decode_engines():
    rr = RoundRobinScheduler(dual_path=True)
    engines = [E(0), E(1), E(2)]
    assert [rr.pick_prefill(engines).index for _ in range(4)] == [0, 1, 2, 0]
    des = [E(0, hbm_free=0), E(1), E(2)]
    assert [rr.pick_decode([G(des)], 1, 1).index for _ in range(3)] == [1, 2, 1]
    assert [rr.pick_read_side(None, None) for _ in range(4)] == ["P", "D", "P", "D"]


def test_prefill_available_agrees_with_pick_prefill():
    """The dispatcher's cheap pre-check must never disagree with the full PE choice."""
    s = sched()
    for toks in ([1001, 5000], [1000, 5000], [0], [2000, 999, 3000], []):
        engines = [E(i, tok=t) for i, t in enumerate(toks)]
        assert s.prefill_available(engines) == (bool(engines) and s.pick_prefill(engines) is not None)
    assert RoundRobinScheduler().prefill_available([E(0, tok=10**9)])


def test_every_scheduler_name_a_scenario_accepts_has_a_factory():
    """The config's allowed values (SchedulerName) and the kernel's registry (SCHEDULERS) agree, and
    each factory builds a scheduler that answers the four questions."""
    from dpsim.kernel.policies.scheduler import SCHEDULERS, SchedulerInputs
    from dpsim.scenario.config import SchedulerName

    assert set(SCHEDULERS) == set(SchedulerName)
    for name, factory in SCHEDULERS.items():
        scheduler = factory(SchedulerInputs(alpha_tokens=100.0, beta_tokens=1000.0, z_slack=1.05, dual_path=True))
        for method in ("prefill_available", "pick_prefill", "pick_decode", "pick_read_side"):
            assert callable(getattr(scheduler, method)), (name, method)


def test_model_names_a_scenario_accepts_are_the_registry():
    from dpsim.scenario.config import ModelConfig
    from dpsim.scenario.models import MODELS

    for name in MODELS:
        assert ModelConfig(name=name).name == name
    with pytest.raises(ValueError, match="ds27b"):  # the error lists the registry's names
        ModelConfig(name="gpt-2")


@pytest.mark.parametrize("sets", [
    ["workload.agents=24", "workload.max_turns=6", "policy.system=dualpath"],
    # decode nodes switch to prefill and back (docs/whatif.md#4-adaptive-prefilldecode-roles)
    ["workload.agents=48", "workload.max_turns=6", "cluster.prefill_nodes=1", "cluster.decode_nodes=3",
     "cluster.prefill_ep_nodes=1", "cluster.decode_ep_nodes=1",
     "policy.beta=1ms", "policy.adaptive_pd.mode=backlog", "workload.phase_profile.first_append_scale=8",
     "policy.adaptive_pd.backlog_high=0.05s", "policy.adaptive_pd.backlog_low=0.01s",
     "policy.adaptive_pd.check_every=1s", "policy.adaptive_pd.switch_cost=0s"],
], ids=["quickstart", "roles-switch"])
def test_decode_group_load_is_the_sum_of_its_engines_at_every_dispatch(monkeypatch, sets):
    """The scheduler reads each decode group's tok as kept by the simulation (no sum per dispatch):
    at every dispatch it must equal the sum over the group's engines."""
    from dpsim import api
    from dpsim.kernel.simulation import Simulation

    checked = []
    dispatch = Simulation.dispatch

    def checking(self):
        for group in self.decode_groups:
            assert group.tok == sum(e.tok for e in group.engines)
        checked.append(sum(group.tok for group in self.decode_groups))
        dispatch(self)

    monkeypatch.setattr(Simulation, "dispatch", checking)
    result = api.run(api.load_scenario("scenarios/quickstart.yaml", sets), progress=False)
    assert result.invariant_failures == []
    assert len(checked) > 100 and max(checked) > 0
    if "policy.adaptive_pd.mode=backlog" in sets:
        assert result.summary["prefill_nodes_mean"] > 1.0  # nodes did switch roles

"""The network's two classes (docs/modeling.md, network): per link a work-conserving weighted arbiter
between HIGH and LOW (LOW guaranteed `w` of the link when both have demand), max-min within each
class, per-flow caps; HIGH flows cross exactly one link.

Checked against the definition, written here independently of dpsim.kernel.resources.fluid:
- `_violations`: the conditions an allocation must meet (feasible; every flow at its cap or with a
  bottleneck: a full link where no flow of its class is faster and its class has its entitlement);
- `_reference`: a solver built from the arbiter (HIGH may use all but what LOW actually uses of its
  guarantee; LOW gets what HIGH leaves), iterated to its fixed point.
The issue's three minimal networks with multi-link HIGH flows (A, B, C) are pinned: the reference
gives the arbiter's rates the issue states, and dpsim refuses such flows with a located error.
"""

import random

import pytest
import simpy

from dpsim.kernel.resources.elements import Flow
from dpsim.kernel.resources.fluid import MultiLinkHighFlow, solve_rates
from dpsim.kernel.resources.net import Network, TrafficClass

GB = 1e9
HIGH, LOW = TrafficClass.HIGH, TrafficClass.LOW
REL = 1e-7


def _max_min(flows, capacity):
    """Textbook progressive filling with caps: raise every unfixed flow together; fix the flows of a
    link when it fills, or a flow at its cap."""
    rate = {f: 0.0 for f in flows}
    active = set(flows)
    while active:
        step = min([(f.max_rate - rate[f]) for f in active if f.max_rate is not None] or [float("inf")])
        for link, cap in capacity.items():
            users = [f for f in active if link in f.path]
            if users:
                used = sum(rate[f] for f in flows if link in f.path)
                step = min(step, max(cap - used, 0.0) / len(users))
        for f in active:
            rate[f] += step
        done = {f for f in active if f.max_rate is not None and rate[f] >= f.max_rate * (1 - 1e-12)}
        for link, cap in capacity.items():
            if sum(rate[f] for f in flows if link in f.path) >= cap * (1 - 1e-12):
                done |= {f for f in active if link in f.path}
        active -= done
    return rate


def _reference(links, flows, w, iterations=200):
    """The arbiter's fixed point: HIGH max-min on each link's capacity less what LOW uses of its
    guarantee there (all of it to start with), LOW max-min on what HIGH leaves; repeat until stable."""
    high = [f for f in flows if f.traffic_class == HIGH]
    low = [f for f in flows if f.traffic_class == LOW]
    low_links = {link for f in low for link in f.path}
    low_used = {link: link.capacity * w if link in low_links else 0.0 for link in links}
    rates = {}
    for _ in range(iterations):
        h = _max_min(high, {l: l.capacity - min(l.capacity * w, low_used[l]) for l in links})
        high_used = {l: sum(h[f] for f in high if l in f.path) for l in links}
        lo = _max_min(low, {l: max(l.capacity - high_used[l], 0.0) for l in links})
        new_low_used = {l: sum(lo[f] for f in low if l in f.path) for l in links}
        new = {**h, **lo}
        if rates and all(abs(new[f] - rates[f]) <= 1e-12 * max(1.0, rates[f]) for f in flows):
            return new
        rates, low_used = new, new_low_used
    raise AssertionError("the reference did not converge")


def _violations(links, flows, rates, w):
    """Where `rates` break the definition (empty when they meet it)."""
    out = []
    on = {l: [f for f in flows if l in f.path] for l in links}
    by_class = {l: {c: sum(rates[f] for f in on[l] if f.traffic_class == c) for c in (HIGH, LOW)} for l in links}
    entitled = {HIGH: 1 - w, LOW: w}
    for l in links:
        if sum(by_class[l].values()) > l.capacity * (1 + REL):
            out.append(f"{l.name} over capacity")
    for f in flows:
        if f.max_rate is not None and rates[f] >= f.max_rate * (1 - REL):
            continue
        bottleneck = False
        for l in f.path:
            full = sum(by_class[l].values()) >= l.capacity * (1 - REL)
            fastest = all(rates[f] >= rates[g] * (1 - REL) for g in on[l] if g.traffic_class == f.traffic_class)
            # its class has its share, or (only one class there) the whole link
            others = any(g.traffic_class != f.traffic_class for g in on[l])
            fair = not others or by_class[l][f.traffic_class] >= entitled[f.traffic_class] * l.capacity * (1 - REL)
            bottleneck |= full and fastest and fair
        if not bottleneck:
            out.append(f"{f.tag} has no bottleneck at {rates[f]:.6g}")
    return out


def _network(capacities_gbps, specs):
    """specs: (class, link indexes, cap in GB/s or None). Returns (links, flows)."""
    net = Network(simpy.Environment())
    links = [net.add_link(f"L{i}", c * GB) for i, c in enumerate(capacities_gbps)]
    flows = [Flow(tuple(links[i] for i in path), GB, cls, None if cap is None else cap * GB, f"f{k}", None, k, 0.0)
             for k, (cls, path, cap) in enumerate(specs)]
    return links, flows


# The issue's minimal networks (GB/s) and the arbiter's rates it states for them.
CASE_A = (0.01, [20, 10, 0.01], [(HIGH, [1, 0], None), (LOW, [2, 1], None), (LOW, [0], None)],
          {0: 9.99, 2: 10.01})
CASE_B = (0.01, [350, 43, 36], [(LOW, [1], None), (HIGH, [2, 0], None), (LOW, [2, 1], None), (LOW, [0], None),
                                (HIGH, [1, 0], None)], {0: 0.215, 2: 0.215, 4: 42.57})
CASE_C = (0.5, [40, 10, 2, 100, 23], [(LOW, [2, 1], None), (HIGH, [0, 1], None), (HIGH, [0, 4], None),
                                      (LOW, [0, 3], None), (LOW, [4, 0], None), (HIGH, [3], None)], {5: 90})


@pytest.mark.parametrize("case", [CASE_A, CASE_B, CASE_C], ids="ABC")
def test_the_reference_gives_the_arbiters_rates_on_the_issues_cases(case):
    w, capacities, specs, want = case
    links, flows = _network(capacities, specs)
    got = _reference(links, flows, w)
    assert _violations(links, flows, got, w) == []
    for index, gbps in want.items():
        assert got[flows[index]] / GB == pytest.approx(gbps, rel=2e-3)


def test_the_definition_rejects_the_old_four_step_rates_of_case_a():
    # dpsim's fill gave h = 9.9, b = 10.1 (a = 0.01): HIGH under its share on L0, and L1 not full.
    w, capacities, specs, _ = CASE_A
    links, flows = _network(capacities, specs)
    old = {flows[0]: 9.9 * GB, flows[1]: 0.01 * GB, flows[2]: 10.1 * GB}
    assert _violations(links, flows, old, w) == ["f0 has no bottleneck at 9.9e+09"]


@pytest.mark.parametrize("case", [CASE_A, CASE_B, CASE_C], ids="ABC")
def test_multi_link_high_flows_are_refused_with_the_flow_and_its_links(case):
    w, capacities, specs, _ = case
    links, flows = _network(capacities, specs)
    with pytest.raises(MultiLinkHighFlow, match=r"HIGH-class flow f\d+: path \(L\d, L\d\) must be exactly one link"):
        solve_rates(links, flows, w)
    env = simpy.Environment()
    net = Network(env, low_class_share=w)
    live = [net.add_link(f"L{i}", c * GB) for i, c in enumerate(capacities)]
    cls, path, _ = next(spec for spec in specs if spec[0] == HIGH and len(spec[1]) > 1)
    with pytest.raises(MultiLinkHighFlow, match="a2a"):
        net.transfer([live[i] for i in path], GB, cls, tag="a2a")
    assert net.active_flows == 0


def _random_network(seed, multi_link_high):
    rng = random.Random(seed)
    capacities = [rng.choice([0.5, 1, 5, 10, 25, 50]) for _ in range(rng.randint(1, 7))]
    specs = []
    for _ in range(rng.randint(2, 16)):
        cls = HIGH if rng.random() < 0.4 else LOW
        hops = rng.randint(1, min(3, len(capacities))) if (cls == LOW or multi_link_high) else 1
        cap = rng.choice([None, rng.uniform(0.05, 8)]) if cls == HIGH else rng.choice([None, None, rng.uniform(0.05, 8)])
        specs.append((cls, rng.sample(range(len(capacities)), hops), cap))
    return rng.choice([0.01, 0.1, 0.5]), capacities, specs


@pytest.mark.parametrize("seed", range(60))
def test_solver_equals_the_reference_and_meets_the_definition_on_random_networks(seed):
    w, capacities, specs = _random_network(seed, multi_link_high=False)
    links, flows = _network(capacities, specs)
    got = solve_rates(links, flows, w)
    assert _violations(links, flows, got, w) == []
    want = _reference(links, flows, w)
    for f in flows:
        assert got[f] == pytest.approx(want[f], rel=1e-9, abs=1e-3), f.tag


@pytest.mark.parametrize("seed", range(30))
def test_the_reference_meets_the_definition_with_multi_link_high_flows(seed):
    """The reference is what the arbiter means on any network, not only where dpsim's fill is exact."""
    w, capacities, specs = _random_network(seed, multi_link_high=True)
    links, flows = _network(capacities, specs)
    assert _violations(links, flows, _reference(links, flows, w), w) == []

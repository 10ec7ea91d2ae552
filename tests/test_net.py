"""Closed-form tests of the fluid network (dpsim/kernel/resources/net.py)."""

import pytest
import simpy

from dpsim.kernel.resources.elements import Link
from dpsim.kernel.resources.net import Network, TrafficClass

GB = 1e9


def _run_flows(specs, capacity=10 * GB, low_share=0.01, links=1):
    """specs: (start_s, size_bytes, class, link indexes, max_rate). Returns finish times."""
    env = simpy.Environment()
    net = Network(env, low_class_share=low_share)
    ls = [net.add_link(f"l{i}", capacity if not isinstance(capacity, list) else capacity[i]) for i in range(links)]
    finish = {}

    def starter(i, start, size, cls, path, cap):
        yield env.timeout(start)
        yield net.transfer([ls[j] for j in path], size, cls, max_rate=cap, tag=f"f{i}")
        finish[i] = env.now

    for i, (start, size, cls, path, cap) in enumerate(specs):
        env.process(starter(i, start, size, cls, path, cap))
    env.run()
    assert net.violations == []
    return finish, net


def test_a_path_crossing_a_link_twice_is_refused_by_name():
    net = Network(simpy.Environment())
    a, b = net.add_link("nic.tx", GB), net.add_link("nic.rx", GB)
    with pytest.raises(ValueError, match=r"flow kv: its path crosses a link twice \(nic.tx, nic.rx, nic.tx\)"):
        net.transfer([a, b, a], GB, tag="kv")
    assert net.active_flows == 0 and not a.flows


def test_one_flow_takes_size_over_capacity():
    finish, _ = _run_flows([(0, 20 * GB, TrafficClass.LOW, [0], None)])
    assert finish[0] == pytest.approx(2.0)


@pytest.mark.parametrize("n", [2, 5, 17])
def test_n_equal_flows_finish_together_at_n_times(n):
    finish, _ = _run_flows([(0, 10 * GB, TrafficClass.LOW, [0], None)] * n)
    assert all(t == pytest.approx(n * 1.0) for t in finish.values())


def test_staggered_arrivals():
    # A alone for 1 s (10 GB of 20), then A and B share 5 GB/s each: A's last 10 GB take 2 s.
    finish, _ = _run_flows([(0, 20 * GB, TrafficClass.LOW, [0], None), (1, 20 * GB, TrafficClass.LOW, [0], None)])
    assert finish[0] == pytest.approx(3.0)
    # B moved 10 GB by t=3, then alone: 10 GB at 10 GB/s.
    assert finish[1] == pytest.approx(4.0)


def test_two_link_bottleneck_max_min():
    # Link 0 = 10 GB/s, link 1 = 4 GB/s. A uses 0 and 1, B uses 0 only.
    # A bottlenecked at link 1 (4 GB/s); B gets the rest of link 0 (6 GB/s), not half.
    finish, _ = _run_flows(
        [(0, 8 * GB, TrafficClass.LOW, [0, 1], None), (0, 12 * GB, TrafficClass.LOW, [0], None)],
        capacity=[10 * GB, 4 * GB], links=2)
    assert finish[0] == pytest.approx(2.0)
    assert finish[1] == pytest.approx(2.0)


def test_low_class_gets_guarantee_when_high_is_greedy():
    # Both classes greedy on one link: low gets exactly its 1 % share while high is busy.
    finish, _ = _run_flows([(0, 99 * GB, TrafficClass.HIGH, [0], None), (0, 1 * GB, TrafficClass.LOW, [0], None)],
                           capacity=10 * GB)
    assert finish[0] == pytest.approx(10.0)
    assert finish[1] == pytest.approx(10.0)


def test_low_class_gets_residual_plus_nothing_more():
    # High paced at 6 GB/s on a 10 GB/s link: low gets the 4 GB/s residual (>= its 1 % guarantee).
    finish, _ = _run_flows([(0, 12 * GB, TrafficClass.HIGH, [0], 6 * GB), (0, 8 * GB, TrafficClass.LOW, [0], None)])
    assert finish[0] == pytest.approx(2.0)
    assert finish[1] == pytest.approx(2.0)


@pytest.mark.parametrize("low_flows", [0, 1, 10, 100])
def test_high_class_unaffected_by_any_amount_of_low_load(low_flows):
    specs = [(0, 12 * GB, TrafficClass.HIGH, [0], 6 * GB)]
    specs += [(0, 50 * GB, TrafficClass.LOW, [0], None)] * low_flows
    finish, _ = _run_flows(specs)
    assert finish[0] == pytest.approx(2.0)


def test_idle_guarantee_goes_back_to_high():
    # The low flow is bottlenecked at 0.01 GB/s on link 1, below its 0.1 GB/s guarantee on link 0:
    # the unused part of the guarantee goes to high.
    finish, _ = _run_flows(
        [(0, 9.99 * GB, TrafficClass.HIGH, [0], None), (0, 0.01 * GB, TrafficClass.LOW, [0, 1], None)],
        capacity=[10 * GB, 0.01 * GB], links=2)
    assert finish[0] == pytest.approx(1.0)
    assert finish[1] == pytest.approx(1.0)


def test_no_isolation_means_equal_share():
    # The same two flows in one class share equally: the collective is slowed.
    finish, _ = _run_flows([(0, 10 * GB, TrafficClass.LOW, [0], 6 * GB), (0, 10 * GB, TrafficClass.LOW, [0], None)])
    assert finish[0] == pytest.approx(2.0)


def test_bytes_are_conserved_per_link_and_per_tag():
    _, net = _run_flows([(0, 3 * GB, TrafficClass.LOW, [0], None), (0.5, 2 * GB, TrafficClass.HIGH, [0], None)])
    net.flush()
    link = net.links[0]
    assert sum(link.bytes_by_class) == pytest.approx(5 * GB)
    assert sum(sum(b) for b in link.bins.values()) == pytest.approx(5 * GB)
    assert sum(net.bytes_by_tag.values()) == pytest.approx(5 * GB)


def test_clock_does_not_creep_with_many_nearly_equal_flows():
    env = simpy.Environment()
    net = Network(env)
    link = net.add_link("l", 3 * GB)
    for i in range(200):
        net.transfer([link], 1 * GB + i * 1e-3, TrafficClass.LOW)
    steps = []
    while env.peek() != float("inf"):
        env.step()
        steps.append(env.now)
    assert steps[-1] == pytest.approx(200 / 3)
    assert len(set(steps)) < 200  # near-equal completions merge instead of creeping


def test_zero_size_and_empty_path_complete_immediately():
    env = simpy.Environment()
    net = Network(env)
    link = net.add_link("l", GB)
    assert net.transfer([link], 0).triggered
    assert net.transfer([], 5 * GB).triggered


def test_bad_inputs_raise():
    env = simpy.Environment()
    net = Network(env)
    with pytest.raises(ValueError):
        net.add_link("bad", -1)
    link = net.add_link("l", GB)
    with pytest.raises(ValueError):
        net.transfer([link], -5)


def _reference_max_min(flows, capacity):
    """Textbook progressive filling (all links re-scanned every round): the oracle for net._max_min."""
    import math

    rates, remaining, active = {}, dict(capacity), list(flows)
    while active:
        counts = {}
        for f in active:
            for link in f.path:
                counts[link] = counts.get(link, 0) + 1
        share = min(remaining[link] / n for link, n in counts.items())
        share = min([share] + [f.max_rate for f in active if f.max_rate is not None])
        tight = {link for link, n in counts.items() if remaining[link] / n <= share * (1 + 1e-9) + 1e-12}
        still = []
        for f in active:
            if (f.max_rate is not None and f.max_rate <= share * (1 + 1e-9) + 1e-12) or tight & set(f.path):
                rates[f] = share
                for link in f.path:
                    remaining[link] -= share
            else:
                still.append(f)
        active = still
        assert math.isfinite(share)
    return rates


@pytest.mark.parametrize("seed", range(40))
def test_max_min_equals_textbook_progressive_filling_on_random_networks(seed):
    import random

    from dpsim.kernel.resources.elements import Flow
    from dpsim.kernel.resources.fluid import _max_min

    rng = random.Random(seed)
    env = simpy.Environment()
    net = Network(env)
    links = [net.add_link(f"l{i}", rng.choice([1, 2, 5, 10, 12.5]) * GB) for i in range(rng.randint(1, 12))]
    flows = []
    for i in range(rng.randint(1, 40)):
        path = tuple(rng.sample(links, rng.randint(1, min(4, len(links)))))
        cap = rng.choice([None, None, rng.uniform(0.1, 6) * GB])
        flows.append(Flow(path, GB, TrafficClass.LOW, cap, f"f{i}", None, i, 0.0))
    capacity = {link: link.capacity for link in links}
    got, want = _max_min(flows, capacity), _reference_max_min(flows, capacity)
    assert set(got) == set(flows)
    for f in flows:
        assert got[f] == pytest.approx(want[f], rel=1e-6), f
    for link in links:  # feasible and every flow is bottlenecked somewhere (max-min optimality)
        assert sum(got[f] for f in flows if link in f.path) <= link.capacity * (1 + 1e-6)
    for f in flows:
        capped = f.max_rate is not None and got[f] >= f.max_rate * (1 - 1e-6)
        saturated = [l for l in f.path if sum(got[g] for g in flows if l in g.path) >= l.capacity * (1 - 1e-6)
                     and all(got[f] >= got[g] * (1 - 1e-6) for g in flows if l in g.path)]
        assert capped or saturated, f


@pytest.mark.parametrize("seed", range(30))
def test_two_class_solver_equals_the_four_step_definition(seed):
    """solve_rates skips the refill when every HIGH flow runs at its own cap; that shortcut must give
    the same rates as the full four-step definition on random mixed networks."""
    import random

    from dpsim.kernel.resources.elements import Flow
    from dpsim.kernel.resources.fluid import solve_rates

    rng = random.Random(1000 + seed)
    env = simpy.Environment()
    net = Network(env)
    links = [net.add_link(f"l{i}", rng.choice([1, 5, 10]) * GB) for i in range(rng.randint(1, 8))]
    flows = []
    for i in range(rng.randint(2, 30)):
        cls = rng.choice([TrafficClass.HIGH, TrafficClass.LOW])
        path = tuple(rng.sample(links, 1 if cls == TrafficClass.HIGH else rng.randint(1, min(3, len(links)))))
        cap = rng.choice([None, rng.uniform(0.05, 3) * GB]) if cls == TrafficClass.HIGH else None
        flows.append(Flow(path, GB, cls, cap, f"f{i}", None, i, 0.0))
    share = 0.01
    high = [f for f in flows if f.traffic_class == TrafficClass.HIGH]
    low = [f for f in flows if f.traffic_class == TrafficClass.LOW]
    cap = {l: l.capacity for l in links}

    def residual(used):
        r = dict(cap)
        for f, rate in used.items():
            for l in f.path:
                r[l] -= rate
        return {l: max(v, 0.0) for l, v in r.items()}

    if high and low:
        low_links = {l for f in low for l in f.path}
        h = _reference_max_min(high, {l: cap[l] * (1 - (share if l in low_links else 0)) for l in links})
        lo = _reference_max_min(low, residual(h))
        h = _reference_max_min(high, residual(lo))
        lo = _reference_max_min(low, residual(h))
        want = {**h, **lo}
    else:
        want = _reference_max_min(flows, cap)
    got = solve_rates(links, flows, share)
    for f in flows:
        assert got[f] == pytest.approx(want[f], rel=1e-6, abs=1e-3), f


def test_completions_merged_within_the_time_tolerance_are_not_byte_violations():
    # Two flows on separate links finish 0.5 ns apart at 10 GB/s: they complete together, so the
    # later one ends ~5 bytes early. That is the tolerance at work, not lost bytes.
    finish, net = _run_flows([(0, 1000, TrafficClass.LOW, [0], None), (0, 1005, TrafficClass.LOW, [1], None)],
                             links=2)
    assert finish[0] == finish[1]
    assert net.violations == []


def _random_run(seed, split, skip_idle=True):
    """A random network with LOW flows and capped HIGH flows (some seeds also uncapped HIGH ones, which
    need the refill) started over 5 s; finish times and per-link bytes, and the network."""
    import random

    rng = random.Random(seed)
    env = simpy.Environment()
    net = Network(env, low_class_share=0.01)
    net._split_ok = split
    net._skip_idle = skip_idle
    links = [net.add_link(f"l{i}", rng.choice([1, 2, 5, 10]) * GB) for i in range(14)]
    uncapped_high = seed % 4 == 0
    finish = {}

    def starter(i, start, size, cls, path, cap):
        yield env.timeout(start)
        yield net.transfer(path, size, cls, max_rate=cap, tag=f"f{i}")
        finish[i] = env.now

    for i in range(rng.randint(40, 90)):
        cls = TrafficClass.HIGH if rng.random() < 0.2 else TrafficClass.LOW
        path = rng.sample(links, 1 if cls == TrafficClass.HIGH else rng.randint(1, 3))  # HIGH: one link
        # capped HIGH flows well under the link rates (like the simulator's all-to-all) rarely need the
        # refill; the uncapped ones of every fourth seed do
        cap = None if cls == TrafficClass.LOW or (uncapped_high and rng.random() < 0.3) else rng.uniform(0.05, 0.3) * GB
        env.process(starter(i, rng.uniform(0, 5), rng.uniform(0.05, 3) * GB, cls, path, cap))
    env.run()
    net.flush()
    assert net.violations == []
    return finish, [tuple(link.bytes_by_class) for link in links], net


@pytest.mark.parametrize("seed", range(24))
def test_split_components_give_the_same_run_as_whole_components(seed):
    """Stopping a component at links with slack (net._component split=True) must change nothing: the
    same finish times and link byte counts, to the bit, as solving every whole component."""
    whole_finish, whole_bytes, whole = _random_run(seed, split=False)
    split_finish, split_bytes, split = _random_run(seed, split=True)
    assert split_finish == whole_finish
    assert split_bytes == whole_bytes
    assert whole.split_solves == 0 and split.recomputations == whole.recomputations


def test_split_is_used_and_falls_back_and_stops_after_a_refill():
    runs = [_random_run(seed, split=True)[2] for seed in range(24)]
    assert sum(n.split_solves for n in runs) > 0  # the random networks do exercise the split
    assert sum(n.split_fallbacks for n in runs) > 0  # ... and the check that undoes it
    # a link-limited HIGH flow (a refill) turns splitting off for the rest of the run; both kinds occur
    assert any(not n._split_ok for n in runs) and any(n._split_ok for n in runs)


def _joined_component(load_big_gb_per_s):
    """A 400 GB/s link ("dram") carries an old flow at `load_big_gb_per_s`; a new flow then starts on a
    50 GB/s link ("nic") and the big one. Returns the search a re-rate starts with: (links, flows,
    boundary) of `Network._component`, and the two flows."""
    env = simpy.Environment()
    net = Network(env)
    nic, dram = net.add_link("nic", 50 * GB), net.add_link("dram", 400 * GB)
    net.transfer([dram], 1e15, max_rate=load_big_gb_per_s * GB, tag="old")
    env.run(until=1.0)  # the old flow is rated
    (old,) = dram.flows
    net.transfer([nic, dram], 1e12, tag="new")
    new = dram.flows[1]
    return net._component([], net._joined, split=True), old, new, nic, dram


def test_a_new_flow_does_not_pull_in_a_link_it_cannot_fill():
    """The new flow can take at most 50 GB/s (its NIC): on the 400 GB/s link, with 100 GB/s used, that
    leaves slack, so the old flow there is not re-solved and the big link is only checked after."""
    (links, flows, boundary), old, new, nic, dram = _joined_component(100)
    assert links == [nic] and flows == [new] and boundary == [dram]


def test_a_new_flow_pulls_in_a_link_it_can_fill():
    """With 360 GB/s used, the new flow's 50 GB/s could fill the big link: it is crossed and the old
    flow is solved with the new one."""
    (links, flows, boundary), old, new, nic, dram = _joined_component(360)
    assert set(links) == {nic, dram} and flows == [new, old] and boundary == []


@pytest.mark.parametrize("seed", range(24))
def test_no_rerate_after_a_completion_on_links_with_slack_changes_nothing(seed):
    """A flow that leaves only links with slack changes no other rate, so the re-rate is skipped; the
    run must be the same, to the bit, as one that re-rates after every completion."""
    every_finish, every_bytes, every = _random_run(seed, split=True, skip_idle=False)
    skip_finish, skip_bytes, skip = _random_run(seed, split=True, skip_idle=True)
    assert skip_finish == every_finish
    assert skip_bytes == every_bytes


def test_skipping_is_used_on_random_networks():
    skip = sum(_random_run(seed, split=True)[2].recomputations for seed in range(24))
    every = sum(_random_run(seed, split=True, skip_idle=False)[2].recomputations for seed in range(24))
    assert 0 < skip < every


def test_one_rerate_per_instant_for_a_flow_that_starts_when_another_ends():
    """A and C share a 10 GB/s link (5 GB/s each); A ends at t=1, which re-rates C, and B (waiting
    for A) starts at t=1: one solve for both changes at t=1, not one each."""
    env = simpy.Environment()
    net = Network(env)
    link = net.add_link("l", 10 * GB)
    times = {}

    def chain():
        yield net.transfer([link], 5 * GB, tag="a")
        times["a"] = env.now
        yield net.transfer([link], 10 * GB, tag="b")
        times["b"] = env.now

    def other():
        yield net.transfer([link], 20 * GB, tag="c")
        times["c"] = env.now

    env.process(chain())
    env.process(other())
    env.run()
    # t=1: C has 15 GB left, B 10 GB, 5 GB/s each: B ends at t=3, C alone does its last 5 GB by 3.5
    assert times == {"a": pytest.approx(1.0), "b": pytest.approx(3.0), "c": pytest.approx(3.5)}
    assert net.recomputations == 3  # t=0; t=1 (A's end and B's start together); t=3 (C alone)
    assert net.violations == []


def test_a_link_records_bytes_per_time_bin_in_order_and_adds_to_an_earlier_bin_in_place():
    link = Link("l", 1e9, 0)
    assert link.bins == {} and [list(a) for a in link.bin_arrays()] == [[], [], []]
    link.add_to_bin(3, 1.0, 2.0)
    link.add_to_bin(3, 0.5, 0.0)
    link.add_to_bin(7, 4.0, 0.0)  # bins no traffic crossed are not recorded
    link.add_to_bin(9, 0.0, 1.0)
    assert link.bins == {3: [1.5, 2.0], 7: [4.0, 0.0], 9: [0.0, 1.0]}
    link.add_to_bin(7, 1.0, 1.0)  # an earlier bin (a boundary floating point put on the other side)
    link.add_to_bin(5, 2.0, 0.0)  # an earlier bin not yet recorded goes in its place
    bins, high, low = link.bin_arrays()
    assert list(bins) == [3, 5, 7, 9] and list(high) == [1.5, 2.0, 5.0, 0.0] and list(low) == [2.0, 0.0, 1.0, 1.0]
    link.add_to_bin(9, 1.0, 0.0)  # still the bin being added to
    assert link.bins[9] == [1.0, 1.0] and link.bin_index == 9

"""Closed-form tests of the fluid network (dpsim/net.py)."""

import pytest
import simpy

from dpsim.net import Network, TrafficClass

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

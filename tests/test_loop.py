"""The run loop (dpsim.kernel.loop): a driven network's wake-ups run in SimPy's order, so a run is the
same, event for event, as with the network's SimPy events."""

import gc
import math
import random
from pathlib import Path

import pytest
import simpy

from dpsim.kernel import loop
from dpsim.kernel.resources.net import Network, TrafficClass

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def _scenario(env: simpy.Environment, net: Network, seed: int) -> list:
    """Processes that start transfers at random and shared instants (ties with completions
    included) and log what they see; returns the log, filled as the run goes."""
    rng = random.Random(seed)
    links = [net.add_link(f"l{i}", rng.choice([1e9, 2e9, 5e9])) for i in range(6)]
    log: list = []

    def actor(name: int):
        for step in range(8):
            # whole-microsecond waits and sizes that finish on whole microseconds: many same-instant ties
            yield env.timeout(rng.choice([0.0, 1e-6, 2e-6, 1e-3]))
            path = rng.sample(links, rng.randint(1, 3))
            cls = TrafficClass.LOW
            cap = None
            if rng.random() < 0.3:
                path, cls, cap = path[:1], TrafficClass.HIGH, rng.choice([None, 3e8])
            done = net.transfer(path, rng.choice([1e3, 1e6, 2e6, 5e6]), cls, cap, tag=f"a{name}")
            log.append((env.now, name, step, "start"))
            yield done
            log.append((env.now, name, step, "done"))

    for name in range(12):
        env.process(actor(name))
    return log


@pytest.mark.parametrize("seed", range(6))
def test_a_driven_network_runs_the_same_events_in_the_same_order(seed):
    env_a = simpy.Environment()
    net_a = Network(env_a)
    log_a = _scenario(env_a, net_a, seed)
    env_a.run()

    env_b = simpy.Environment()
    net_b = Network(env_b)
    net_b.drive()
    log_b = _scenario(env_b, net_b, seed)
    counts = loop.run(env_b, net_b)

    assert log_b == log_a  # every completion at the same time, to the bit, and in the same order
    assert net_b.bytes_by_tag == net_a.bytes_by_tag and not net_a.violations and not net_b.violations
    assert [link.bytes_by_class for link in net_b.links] == [link.bytes_by_class for link in net_a.links]
    assert counts.network_wakeups > 0
    # the wake-ups replaced SimPy events one for one: both runs drew the same number of event ids
    assert next(env_b._eid) == next(env_a._eid)


def test_run_stops_at_until_with_flows_still_running():
    env = simpy.Environment()
    net = Network(env)
    net.drive()
    link = net.add_link("l", 1e9)
    done = net.transfer([link], 1e9)  # 1 s
    loop.run(env, net, until=0.5)
    assert env.now == 0.5 and not done.triggered
    assert loop.peek(env, net) == pytest.approx(1.0)  # the network's completion, not SimPy's empty queue
    assert math.isinf(env.peek())


def test_drive_refuses_a_network_already_in_use():
    env = simpy.Environment()
    net = Network(env)
    net.transfer([net.add_link("l", 1e9)], 1e6)
    with pytest.raises(RuntimeError, match="before the first transfer"):
        net.drive()


def test_the_check_hook_can_stop_the_run():
    env = simpy.Environment()
    net = Network(env)
    net.drive()
    link = net.add_link("l", 1e9)

    def many():
        for _ in range(1000):
            yield net.transfer([link], 1e3)

    env.process(many())
    seen = []

    def check(events: int) -> None:
        seen.append(events)
        if events > 100:
            raise RuntimeError("bound")

    with pytest.raises(RuntimeError, match="bound"):
        loop.run(env, net, check=check, check_every=50)
    assert seen == [1, 51, 101]  # before the run, then every 50 events until it stops


def test_the_collector_is_off_during_a_run_and_restored_after():
    env = simpy.Environment()
    net = Network(env)
    net.drive()
    link = net.add_link("l", 1e9)
    seen = []

    kept = []

    def actor():
        seen.append(gc.isenabled())
        for _ in range(1000):
            kept.append(net.transfer([link], 1e3))  # events the run keeps
            yield kept[-1]
        seen.append(gc.isenabled())

    env.process(actor())
    assert gc.isenabled()
    loop.run(env, net)
    assert seen == [False, False] and gc.isenabled()

    # what the run kept went to the oldest generation, unexamined: no young collection walks it
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(event) in oldest for event in kept) and gc.get_freeze_count() == 0

    gc.disable()  # a caller that had it off keeps it off
    try:
        env.process(actor())
        loop.run(env, net)
        assert not gc.isenabled()
    finally:
        gc.enable()


# Every kind of actor the kernel has, small: the run loop switches the cyclic collector off because a
# run makes no reference cycles (dpsim.kernel.loop, "Garbage collection").
_ACTORS = [
    ("quickstart.yaml", ["policy.system=dualpath"]),
    ("quickstart.yaml", ["policy.system=basic"]),
    ("quickstart.yaml", ["policy.system=oracle"]),
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "policy.system=basic", "policy.whole_prompt_kv_read=at_pass"]),
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "policy.system=basic"]),  # next_pass: reads a pass ahead
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "policy.read_split=balanced"]),
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "hardware.dram_tier.enabled=true",
                                "hardware.dram_tier.capacity_per_node=100GB"]),
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "policy.de_bypass=true"]),
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "policy.dispatch_order=deadline"]),
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "policy.scheduler=round_robin"]),
    ("paper/ds660b-2p4d.yaml", ["workload.agents=16", "workload.mode=online", "workload.aps=0.2"]),
    ("whatif/adaptive-pd.yaml", []),  # role switching
]


@pytest.mark.parametrize("path,overrides", _ACTORS, ids=[f"{p}:{' '.join(o)}" for p, o in _ACTORS])
def test_a_run_leaves_no_reference_cycles(path, overrides):
    from dpsim import api
    from dpsim.kernel.simulation import Simulation

    scenario = api.load_scenario(SCENARIOS / path, overrides + ["run.max_sim_time=200"])
    trajectories = api.build_workload(scenario)
    sim = Simulation(scenario, trajectories, progress=False)
    gc.collect()
    gc.disable()  # else the first allocations after the run would collect what it left
    try:
        sim.simulate(api.arrival_times(scenario, trajectories), stop_rule=lambda _sim: None)  # with the monitor
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert sim.turns_finished > 0
    assert unreachable == 0  # nothing the run allocated was cyclic garbage

"""The prefill pool (dpsim.kernel.policies.prefill_pool): each node's leader, and the DualPath PE rule
picking from the leaders exactly what it picks from all engines."""

import random

from engine_stubs import E, Node

from dpsim.kernel.policies.prefill_pool import PrefillPool
from dpsim.kernel.policies.scheduler import DualPathScheduler


def test_leaders_are_each_nodes_smallest_tok_then_index():
    a, b = Node(name="a"), Node(name="b")
    engines = [E(0, tok=50, node=a), E(1, tok=20, node=a), E(2, tok=20, node=a), E(3, tok=7, node=b), E(4, tok=9, node=b)]
    pool = PrefillPool(engines)
    assert [e.index for e in pool.leaders()] == [1, 3]
    engines[1].tok = 30  # the simulation changes a load and says so
    pool.load_changed(engines[1])
    assert [e.index for e in pool.leaders()] == [2, 3]
    assert [e.index for e in pool] == [0, 1, 2, 3, 4] and len(pool) == 5 and pool[3] is engines[3]


def test_a_node_leaves_and_comes_back():
    a, b = Node(name="a"), Node(name="b")
    on_a, on_b = [E(0, tok=5, node=a), E(1, tok=1, node=a)], [E(2, tok=3, node=b)]
    pool = PrefillPool(on_a + on_b)
    pool.remove_node("a")
    assert [e.index for e in pool] == [2] and [e.index for e in pool.leaders()] == [2]
    pool.load_changed(on_a[0])  # an engine outside the pool: nothing to do
    pool.extend(on_a)
    assert [e.index for e in pool] == [2, 0, 1] and [e.index for e in pool.leaders()] == [2, 1]


def test_dualpath_picks_the_same_engine_from_the_pool_as_from_all_engines():
    """Random loads and read queues, changed between picks as dispatch and prefill completion change
    them: the pick from the leaders equals the pick from every engine (and prefill_available agrees)."""
    rng = random.Random(7)
    for trial in range(200):
        nodes = [Node(read_queue_tokens=0, name=f"n{i}") for i in range(rng.randint(1, 6))]
        engines = [E(i, tok=rng.choice([0, 10, 500, 999, 1000, 1001, 4000]), node=rng.choice(nodes))
                   for i in range(rng.randint(1, 24))]
        pool = PrefillPool(engines)
        sched = DualPathScheduler(alpha_tokens=100, beta_tokens=1000)
        for _ in range(30):
            for node in nodes:
                node.read_queue_tokens = rng.choice([0, 50, 100, 101, 5000])
            expected = sched.pick_prefill(list(engines))
            assert sched.pick_prefill(pool) is expected, trial
            assert sched.prefill_available(pool) == (expected is not None)
            changed = rng.choice(engines)
            changed.tok = max(0, changed.tok + rng.choice([-600, -10, 10, 600]))
            pool.load_changed(changed)

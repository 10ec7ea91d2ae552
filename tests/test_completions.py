"""The network's completion queue (dpsim.kernel.resources.completions): flows come out due in
(finish time, sequence) order, a new prediction replaces the old one, a forgotten flow never comes out.
Run against whichever form is imported (compiled when built); tests/test_compiled.py compares whole
runs of the two."""

import math
import random

from dpsim.kernel.resources.completions import CompletionQueue
from dpsim.kernel.resources.elements import Flow
from dpsim.kernel.resources.fluid import TrafficClass


def _flow(seq):
    return Flow((), 1.0, TrafficClass.LOW, None, "t", None, seq, 0.0)


def test_earliest_first_ties_by_sequence_and_repredictions_move():
    q = CompletionQueue()
    a, b, c = _flow(0), _flow(1), _flow(2)
    q.predict(b, 2.0)
    q.predict(a, 2.0)
    q.predict(c, 5.0)
    assert q.first_s() == 2.0 and len(q) == 3
    q.predict(c, 1.0)  # earlier now
    q.predict(a, 9.0)  # later now
    assert [f.seq for f in q.pop_due(2.0)] == [2, 1]
    assert q.first_s() == 9.0 and len(q) == 1
    q.forget(a)
    assert q.first_s() == math.inf and q.pop_due(100.0) == [] and len(q) == 0


def test_random_operations_match_a_sorted_reference():
    rng = random.Random(3)
    flows = [_flow(i) for i in range(60)]
    q, expected = CompletionQueue(), {}
    now = 0.0
    for _ in range(3000):
        f = rng.choice(flows)
        op = rng.random()
        if op < 0.6:
            t = now + rng.choice([0.0, 0.5, 1.0, rng.random() * 10])  # ties on purpose
            q.predict(f, t)
            expected[f] = t
        elif op < 0.75:
            q.forget(f)
            expected.pop(f, None)
        else:
            now += rng.random()
            due = q.pop_due(now)
            want = sorted((t, g.seq) for g, t in expected.items() if t <= now)
            assert [(expected[g], g.seq) for g in due] == want
            for g in due:
                del expected[g]
        assert len(q) == len(expected)
        assert q.first_s() == min(expected.values(), default=math.inf)

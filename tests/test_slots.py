"""dpsim.kernel.resources.slots.Slots: a node's storage read slots. It must grant the same requests at
the same places in SimPy's schedule as `simpy.Resource`, whatever else happens at the same instant."""

import random

import pytest
import simpy

from dpsim.kernel.resources.slots import Slots


def _program(seed: int, pool, trace: list) -> simpy.Environment:
    """Random workers that take a slot of `pool(env, capacity)`, hold it for a delay from a small set
    (0 included: a release in the instant of its grant), and give it back, with other work in
    between; every resumption goes to `trace` with the time and the environment's event count, so a
    grant or a release event at another place in the schedule shows."""
    rng = random.Random(seed)
    env = simpy.Environment()
    capacity = rng.choice([1, 2, 3])
    slots = pool(env, capacity)

    def holder(name: int):
        for step in range(rng.randint(1, 5)):
            yield env.timeout(rng.choice([0.0, 0.0, 0.5, 1.0]))
            if isinstance(slots, Slots):
                yield slots.request()
                trace.append(("granted", env.now, name, step))
                yield env.timeout(rng.choice([0.0, 0.5, 1.0, 1.0]))
                slots.release()
            else:
                with slots.request() as slot:
                    yield slot
                    trace.append(("granted", env.now, name, step))
                    yield env.timeout(rng.choice([0.0, 0.5, 1.0, 1.0]))
            trace.append(("released", env.now, name, step))
            if rng.random() < 0.3:
                env.process(holder(name * 10 + step))  # a new holder, this instant

    for name in range(1, rng.randint(3, 9)):
        env.process(holder(name))
    return env


@pytest.mark.parametrize("seed", range(40))
def test_slots_grant_where_simpy_resource_does(seed):
    runs = []
    for pool in (simpy.Resource, Slots):
        trace: list = []
        env = _program(seed, pool, trace)
        env.run()
        runs.append((trace, env.now, next(env._eid)))  # the same number of events scheduled, too
    assert runs[0][0], "the program ran nothing"
    assert runs[0] == runs[1]


def test_slots_refuse_a_bad_capacity_and_a_release_too_many():
    env = simpy.Environment()
    with pytest.raises(ValueError, match="capacity"):
        Slots(env, 0)
    slots = Slots(env, 1)
    with pytest.raises(RuntimeError, match="released more"):
        slots.release()

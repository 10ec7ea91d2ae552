"""dpsim.kernel.task.Task: a process nobody waits for, without its end event. It must resume its
generator exactly where a `simpy.Process` would, whatever else happens at the same instant."""

import random

import pytest
import simpy

from dpsim.kernel.task import Task


def _program(seed: int, start, trace: list) -> simpy.Environment:
    """A random schedule of workers full of same-instant ties (delays from a small set, events that
    other workers succeed, events that are already processed when yielded), each new worker started
    with `start(env, generator)`. Every resumption is appended to `trace` with the time."""
    rng = random.Random(seed)
    env = simpy.Environment()
    signals = [simpy.Event(env) for _ in range(8)]

    def worker(name: int, depth: int):
        for step in range(rng.randint(1, 6)):
            choice = rng.random()
            if choice < 0.5:
                yield env.timeout(rng.choice([0.0, 0.5, 1.0, 1.0, 2.0]))
            elif choice < 0.7:
                signal = rng.choice(signals)
                if not signal.triggered:
                    signal.succeed(name)
                yield signal  # triggered: processed later in this instant, or already processed
            elif choice < 0.85 and depth < 3:
                start(env, worker(name * 10 + step, depth + 1))  # a new worker, started this instant
                yield env.timeout(0.0)
            else:
                done = simpy.Event(env)
                done.succeed(step)
                value = yield done
                assert value == step
            trace.append((env.now, name, step))

    def waker():  # succeeds the signals nobody has succeeded yet, at tied instants
        for signal in signals:
            yield env.timeout(rng.choice([0.5, 1.0]))
            if not signal.triggered:
                signal.succeed(-1)

    env.process(waker())
    for name in range(1, 7):
        start(env, worker(name, 0))
    return env


@pytest.mark.parametrize("seed", range(30))
def test_a_task_resumes_where_a_process_would(seed):
    traces = []
    for start in (simpy.Process, Task):
        trace: list = []
        env = _program(seed, start, trace)
        env.run()
        traces.append((trace, env.now))
    assert traces[0][0], "the program ran nothing"
    assert traces[0] == traces[1]


def test_a_task_leaves_no_end_event():
    for start, extra in ((simpy.Process, 1), (Task, 0)):
        env = simpy.Environment()

        def body(env=env):
            yield env.timeout(1.0)

        start(env, body())
        env.run()
        # SimPy's counter: the start event, the timeout, and a process's end event
        assert next(env._eid) == 2 + extra


def test_a_failing_task_stops_the_run_with_its_exception():
    env = simpy.Environment()

    def body():
        yield env.timeout(1.0)
        raise ValueError("the buffer is too small")

    Task(env, body())
    with pytest.raises(ValueError, match="the buffer is too small"):
        env.run()


def test_a_task_receives_a_failed_event_as_an_exception():
    env = simpy.Environment()
    caught = []

    def body():
        failed = simpy.Event(env)
        failed.fail(KeyError("gone"))
        try:
            yield failed
        except KeyError as exc:
            caught.append(exc.args[0])

    Task(env, body())
    env.run()
    assert caught == ["gone"]

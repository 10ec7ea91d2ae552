"""The run loop: SimPy's event loop with the fluid network's wake-ups merged in.

The network (`dpsim.kernel.resources.net.Network`) wakes up for two things: the next flow completion
(a timer) and the re-rate at the end of an instant. As SimPy events they were about 40 % of a run's
events (docs/reproduce.md#where-the-time-goes). A driven network (`Network.drive`) keeps each pending
wake-up as the (time, priority, id) key SimPy would have given its event, with the id drawn from
SimPy's own counter at the moment the event would have been scheduled, and this loop runs whichever
comes first, the network's earliest wake-up or the head of SimPy's queue. That is SimPy's order,
event for event, so a run gives the same results to the bit (tests/test_loop.py), without the
wake-up events, their heap entries, or the stale timers a re-armed completion leaves behind.

The loop body is SimPy's `Environment.step` and `run(until)`, inlined (simpy 4.1). It is compiled
with the network when a C compiler is there (`dpsim.tools.compiled`; `loop.pxd` types its counters
and the network it drives, so the wake-up keys are read from the network's C struct): the same
statements, bit-identical runs.

Garbage collection. A run makes no reference cycles: every object it allocates (events, processes,
flows, requests) is freed by its reference count, or lives to the end of the run. So the cyclic
collector, left on, only walks live objects: in the first 900 simulated seconds of 48P96D it took
4.9 % of the loop's time (109 young and 5 middle collections, 20.6 of 421 CPU s; full collections
come later, as the heap grows) and found nothing. The run therefore switches it off
(`collector_off`); tests/test_loop.py runs every kind of actor (prefill modes, split reads, the DRAM
tier, role switching, stop rules, ...) and checks that the run left no cycle for it to find. Were a change to make cycles after all, they
would wait, still collectable, until the run ends: the memory grows, the results do not change.
Result collection (`dpsim.metrics.results.collect`: pandas, not ours to vouch for) keeps the
collector on, with `sparse_gc`: the objects that exist before it are frozen out of it and it runs less
often (`GC_THRESHOLDS`), since with the default thresholds every collection walked the whole
simulation's objects (5 % of a DS 660B 2P4D 256-agent run went to collections while its turns and
links were tabulated).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from heapq import heappop
from typing import Any

import simpy

GC_THRESHOLDS = (50_000, 20, 100)  # gen-0 allocations between collections (Python's default: 700, 10, 10)


@contextmanager
def sparse_gc() -> Iterator[None]:
    """Freeze the objects that exist now out of the cyclic collector and collect less often
    (`GC_THRESHOLDS`) until the block ends; the collector's settings are restored after."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@contextmanager
def collector_off() -> Iterator[None]:
    """No automatic cyclic garbage collection until the block ends (see the module docstring); the
    collector is switched back on after if it was on."""
    enabled = gc.isenabled()
    frozen_before = gc.get_freeze_count()
    gc.disable()
    try:
        yield
    finally:
        # Everything the block allocated and kept is in the young generation now, so the first
        # collection after it would walk all of it (2.3 % of 48P96D's first 400 simulated seconds went
        # to that one collection). It goes to the oldest generation instead, unexamined (freeze, then
        # unfreeze), unless the caller had frozen objects of its own: then it stays frozen with them.
        gc.freeze()
        if not frozen_before:
            gc.unfreeze()
        if enabled:
            gc.enable()


@dataclass
class LoopCounts:
    """What one `run` processed: SimPy events, and the network wake-ups that replaced events."""

    simpy_events: int = 0
    network_wakeups: int = 0


class Environment(simpy.Environment):
    """A SimPy environment that drives a network (`drive`): its `run` is `run` below, and `peek`
    sees the network's wake-ups, so code written for SimPy (`env.run()`, `env.peek()`) keeps working.
    `check`, `check_every` and `check_after_s` go to `run` (the time guard sets them); `counts` is
    what the last `run` processed."""

    def __init__(self, initial_time: float = 0.0):
        super().__init__(initial_time)
        self.network: Any = None
        self.check: Callable[[int], None] | None = None
        self.check_every = 256
        self.check_after_s = math.inf
        self.counts = LoopCounts()

    def drive(self, net: Any) -> None:
        """Run `net`'s wake-ups in this environment's loop (`Network.drive`)."""
        net.drive()
        self.network = net

    def peek(self) -> float:
        return super().peek() if self.network is None else peek(self, self.network)

    def run(self, until: float | simpy.Event | None = None) -> None:  # type: ignore[override]
        if self.network is None:
            super().run(until)
            return
        self.counts = run(self, self.network, until, self.check, self.check_every, self.check_after_s)


def peek(env: simpy.Environment, net: Any) -> float:
    """The time of the next event, SimPy's or the network's (inf if there is none)."""
    at = simpy.Environment.peek(env)
    for key in (net.timer_key, net.flush_key):
        if key is not None and key[0] < at:
            at = key[0]
    return at


def run(env: simpy.Environment, net: Any, until: float | simpy.Event | None = None,
        check: Callable[[int], None] | None = None, check_every: int = 256, check_after_s: float = math.inf
        ) -> LoopCounts:
    """`env.run(until)` with the driven network `net`'s wake-ups merged in; returns what it processed.
    `check(events)` (the time guard, `dpsim.kernel.guard`) is called every `check_every` events (wake-ups
    included) and after every event past `check_after_s` simulated seconds; it stops the run by raising."""
    if until is not None:
        if not isinstance(until, simpy.Event):
            at = float(until)
            if at <= env.now:
                raise ValueError(f"until ({at}) must be greater than the current simulation time")
            until = simpy.Event(env)
            until._ok, until._value = True, None
            env.schedule(until, simpy.events.URGENT, at - env.now)
        elif until.callbacks is None:
            return LoopCounts()
        until.callbacks.append(simpy.core.StopSimulation.callback)
    queue = env._queue  # type: ignore[attr-defined]  # SimPy's heap of (time, priority, id, event)
    driven = net  # compiled: the network's C type (loop.pxd), so its wake-up keys are struct reads
    events = wakeups = 0
    if check is not None:
        check(1)
    with collector_off():
        try:
            while True:
                timer, flush = driven.timer_key, driven.flush_key
                key = None  # the network's wake-up, when it comes before SimPy's queue head
                if timer is not None or flush is not None:
                    key = timer if flush is None or (timer is not None and timer < flush) else flush
                    if queue and not key < queue[0]:  # ids are unique, so the comparison never reaches the event
                        key = None
                if key is not None:
                    env._now = key[0]  # type: ignore[attr-defined]
                    if key is flush:
                        driven.run_flush()
                    else:
                        driven.run_timer()
                    wakeups += 1
                else:
                    try:
                        env._now, _, _, event = heappop(queue)  # type: ignore[attr-defined]
                    except IndexError:
                        raise simpy.core.EmptySchedule() from None
                    callbacks, event.callbacks = event.callbacks, None
                    for callback in callbacks:
                        callback(event)
                    if not event._ok and not hasattr(event, "_defused"):
                        exc = type(event._value)(*event._value.args)
                        exc.__cause__ = event._value
                        raise exc
                events += 1
                if check is not None and (env._now > check_after_s or not events % check_every):  # type: ignore[attr-defined]
                    check(events + 1)
        except simpy.core.StopSimulation:
            pass
        except simpy.core.EmptySchedule:
            if until is not None:
                raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}') from None
    return LoopCounts(events - wakeups, wakeups)

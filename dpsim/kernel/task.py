"""A SimPy process that nobody waits for, without the event that announces its end.

`simpy.Process` is itself an event: when its generator returns, SimPy schedules it so that whoever
waits for the process resumes. A process that no one can wait for (the simulation keeps no reference
to it) still puts that event on the queue, and the run loop pops it and finds no callbacks: one of
the 15.2 SimPy events of a DS 660B turn did nothing (docs/reproduce.md, "Sixteenth session").

`Task` runs a generator exactly as `simpy.Process` does: its first step comes from an urgent event
scheduled when it is made (SimPy's `Initialize`), each yielded event resumes it through its
callbacks, and an event already processed resumes it at once. It leaves out the end event. Leaving
out an event that has no callbacks changes no other event's place in the schedule (SimPy orders
events by time, priority and a counter that only grows), so a run is the same to the bit
(tests/test_task.py compares the two on a schedule full of same-instant ties).

What it is not: an event. A generator that raises propagates the exception out of the run loop at
once (a process would fail its end event, and the loop would raise a copy when it came up); use
`simpy.Process` for anything another actor waits for or interrupts.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy
from simpy.events import URGENT


def soon(env: simpy.Environment, callback: Callable[[simpy.Event], None]) -> None:
    """Call `callback` later in this instant, where a new SimPy process takes its first step: from a
    triggered urgent event, as SimPy's `Initialize` is."""
    event = simpy.Event(env)
    event._ok, event._value = True, None
    event.callbacks.append(callback)
    env.schedule(event, URGENT)


class Task:
    """Run `generator` in `env` as a process that nobody waits for (see the module docstring)."""

    __slots__ = ("_generator", "_resume")

    def __init__(self, env: simpy.Environment, generator: Generator[simpy.Event, Any, Any]):
        self._generator = generator
        self._resume = self._step  # one bound method for every callback it registers
        soon(env, self._resume)

    def _step(self, event: simpy.Event) -> None:
        """`simpy.Process._resume` without the end event: send the event's value (or throw its
        exception) into the generator until it yields an event not yet processed, or returns."""
        generator = self._generator
        while True:
            try:
                if event._ok:
                    event = generator.send(event._value)
                else:
                    event._defused = True  # handed to the generator, as a process does
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    event = generator.throw(exc)
            except StopIteration:
                self._resume = None  # it referred to this task: freed now, without the cyclic collector
                return
            callbacks = event.callbacks
            if callbacks is not None:
                callbacks.append(self._resume)
                return

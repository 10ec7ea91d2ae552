"""A FIFO pool of identical slots (a node's storage read slots): SimPy's `Resource` as dpsim uses it.

A holder takes one slot with `request()`, an event that succeeds when the slot is granted, and gives
it back with `release()`. The events are the ones SimPy's `Resource` schedules, at the same places
in the schedule:

- a request joins the queue, then the head of the queue is granted if a slot is free (SimPy's
  `_trigger_put` looks at the head only);
- a release frees its slot at once and schedules an event (SimPy's `Release`); when that event is
  processed, the head of the queue is granted if a slot is free.

So a run gives the same results to the bit (tests/test_slots.py runs both on random schedules full
of same-instant ties). What is left out is SimPy's general put/get machinery, which a request and a
release went through every time: two queues and a list of users, bound-class descriptors, the
requesting process looked up, a context manager per request, and a no-op callback on every grant.
"""

from __future__ import annotations

from collections import deque

import simpy


class Slots:
    """`capacity` slots, granted in request order."""

    __slots__ = ("env", "capacity", "in_use", "_waiting")

    def __init__(self, env: simpy.Environment, capacity: int):
        if capacity <= 0:
            raise ValueError(f"slots: capacity must be > 0, got {capacity}")
        self.env = env
        self.capacity = capacity
        self.in_use = 0
        self._waiting: deque[simpy.Event] = deque()

    def request(self) -> simpy.Event:
        """An event that succeeds when a slot is this request's; the holder must `release` it."""
        event = simpy.Event(self.env)
        self._waiting.append(event)
        self._grant_head()
        return event

    def release(self) -> None:
        """Give a slot back; the next request gets it when the release's event is processed."""
        self.in_use -= 1
        if self.in_use < 0:
            raise RuntimeError("slots: released more than were granted")
        released = simpy.Event(self.env)
        released.callbacks.append(self._grant_head)
        released.succeed()

    def _grant_head(self, _event: simpy.Event | None = None) -> None:
        if self._waiting and self.in_use < self.capacity:
            self.in_use += 1
            self._waiting.popleft().succeed()

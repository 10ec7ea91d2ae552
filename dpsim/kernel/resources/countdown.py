"""One SimPy event for several transfers of the fluid network (dpsim.kernel.resources.net)."""

from __future__ import annotations

import simpy


class Countdown(simpy.Event):
    """One event for several transfers (`Network.transfer(..., done=countdown)`): it succeeds when the
    last of `count` succeeds, at the place in the schedule where that one's own event would have
    been. So an `AllOf` over it resumes a process exactly when an `AllOf` over the transfers' own
    events would have (the others' events, processed earlier, did nothing), without an event per
    transfer."""

    def __init__(self, env: simpy.Environment, count: int):
        super().__init__(env)
        if count < 1:
            raise ValueError(f"a countdown needs at least one transfer, got {count}")
        self.left = count

    def succeed(self, value=None):
        self.left -= 1
        if self.left == 0:
            return super().succeed(value)
        if self.left < 0:
            raise RuntimeError("Countdown: more transfers finished than it counts")
        return self

"""Progress of one simulation on stderr: turns done, simulated time, wall time and an ETA.

    from dpsim import api
    api.run(scenario, progress=True)     # None (default): run.progress, else only when stderr is a terminal

The bar is driven by the simulation's turn counter (`Simulation.finish` calls `update(1)` on the
object in `Simulation._bar` and `close()` at the end), so it adds no SimPy events and cannot change a
result. The ETA is tqdm's: turns left / turns per wall second so far (turns late in a trajectory are
longer, so the ETA is optimistic early in an offline run).
"""

from __future__ import annotations

import sys
import time


def wanted(progress: bool | None, scenario) -> bool:
    """Whether to show a bar: the caller's choice, else the scenario's run.progress, else a terminal."""
    if progress is not None:
        return bool(progress)
    if scenario.run.progress is not None:
        return bool(scenario.run.progress)
    return sys.stderr.isatty()


class TurnBar:
    """A tqdm bar over a simulation's turns, with its simulated clock as a postfix."""

    def __init__(self, sim, label: str = "", refresh_s: float = 0.5):
        from tqdm import tqdm

        self.sim = sim
        self.refresh_s = refresh_s
        self._last = 0.0
        self._bar = tqdm(total=sim.turns_total, unit="turn", file=sys.stderr, desc=label or None, leave=False,
                         dynamic_ncols=True, mininterval=refresh_s)

    def update(self, n: int = 1) -> None:
        now = time.monotonic()
        if now - self._last >= self.refresh_s:
            self._last = now
            self._bar.set_postfix_str(f"sim {self.sim.env.now:,.1f} s", refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


def attach(sim, label: str = "", refresh_s: float = 0.5) -> TurnBar:
    """Give `sim` (built with progress=False) a turn bar; it is closed when the run ends."""
    sim._bar = TurnBar(sim, label, refresh_s)  # the simulator's own hook: finish() updates it, run() closes it
    return sim._bar

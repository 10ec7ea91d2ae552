"""The wall-time estimate printed before a long run (docs/capacity-planning.md#long-runs).

    from dpsim.planning import run_estimate
    jobs = [run_estimate.Job.of(scenario, turns=run_estimate.workload_turns(scenario))]
    run_estimate.notice(jobs, "compare")   # a line for stderr when the estimate exceeds NOTICE_S, else None

The turns a command will simulate, times the bench's cost of a turn for the model, system and
workload kind: `WallEstimate` (below), from the figures `python -m dpsim.bench --paper --write`
keeps in docs/data/bench-paper.csv, over a bare SimPy loop timed now. `dpsim reproduce --list` uses
the same turn count and figures. The figures are CPU seconds of one core: on a shared machine the
wall time is longer.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import simpy

from dpsim import api
from dpsim.kernel.resources import net

NOTICE_S = 60.0  # [choice] estimates under a minute are not printed: the progress bar is enough
SAMPLE_AGENTS = 256  # agents generated to count the turns of a larger synthetic set (mean turns per agent)
BARE_EVENTS = 20_000  # a short bare-loop timing (~20 ms), once per process

# Written by --paper --write; read by the estimate printed before long runs (dpsim.run_estimate) and by
# reproduce --list. Looked up from the current directory, then beside the package (a source checkout).
BENCH_FIGURES = Path("docs/data/bench-paper.csv")
FIGURE_COLUMNS = ["slice", "model", "system", "workload", "compiled", "turns", "runs", "turns_per_bare_event_median",
                  "turns_per_bare_event_worst"]
_TURNS_PER_AGENT: dict[tuple[str, str, int], float] = {}  # (scenario path, workload JSON, seed) -> mean turns
_TURNS: dict[tuple[str, str, int], int] = {}  # the same key -> all turns of that workload
_WALL: list[WallEstimate] = []  # the WallEstimate of this process, made on first use


@dataclass(frozen=True)
class Job:
    """One simulation a command will run."""

    model: str
    system: str
    turns: int
    trace: bool = False  # a trace replay (its turns cost more than a synthetic set's)

    @classmethod
    def of(cls, scenario, turns: int) -> Job:
        return cls(scenario.model.name, scenario.policy.system, int(turns), bool(scenario.workload.trace))


def trajectories_turns(trajectories) -> int:
    return sum(len(t.turns) for t in trajectories)


def workload_turns(scenario, agents: int | None = None) -> int:
    """About how many turns the scenario's workload holds with `agents` agents (default: its own):
    exact for a trace or up to SAMPLE_AGENTS agents; above, agents x the mean turns of SAMPLE_AGENTS
    generated trajectories (within a few per cent)."""
    agents = agents if agents is not None else scenario.workload.agents
    exact = bool(scenario.workload.trace) or agents is None or agents <= SAMPLE_AGENTS
    sample = api.with_overrides(scenario, workload={"agents": agents if exact else SAMPLE_AGENTS})
    # only these decide the trajectories (the scenario's folder: a relative trace path)
    key = (str(scenario.source_path), sample.workload.model_dump_json(), sample.run.seed)
    if key not in _TURNS_PER_AGENT:
        trajectories = api.build_workload(sample)
        _TURNS_PER_AGENT[key] = trajectories_turns(trajectories) / max(len(trajectories), 1)
        _TURNS[key] = trajectories_turns(trajectories)
    return _TURNS[key] if exact else int(round(agents * _TURNS_PER_AGENT[key]))


def wall():
    """This process's `WallEstimate` (false when there are no bench figures)."""
    if not _WALL:
        _WALL.append(WallEstimate(bare_events_per_s=bare_simpy_events_per_s(BARE_EVENTS, 1)))
    return _WALL[0]


def estimate_s(jobs: Iterable[Job], estimate=None) -> float | None:
    """Seconds of one core for all `jobs`; None without bench figures for them."""
    estimate = wall() if estimate is None else estimate
    if not estimate:
        return None
    seconds = [estimate.seconds(j.model, j.system, j.turns, j.trace) for j in jobs]
    return None if any(s is None for s in seconds) else sum(seconds)


def duration_text(seconds: float) -> str:
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.0f} min" if seconds < 7200 else \
        f"~{seconds / 3600:.1f} h"


def notice(jobs: Iterable[Job], what: str, estimate=None, notice_s: float | None = None) -> str | None:
    """The line to print before `what` runs `jobs`, or None when the estimate is under NOTICE_S."""
    jobs = list(jobs)
    seconds = estimate_s(jobs, estimate)
    if seconds is None or seconds < (NOTICE_S if notice_s is None else notice_s):
        return None
    turns = sum(j.turns for j in jobs)
    return (f"estimate: {what} simulates about {turns:,} turns: {duration_text(seconds)} of one core, from the "
            f"bench's turns per second (python -m dpsim.bench --paper); longer on a busy machine or a cluster "
            f"larger than the bench's")


def bare_simpy_events_per_s(events: int = 100_000, repeats: int = 3) -> float:
    """Timeout events per second of 100 processes that only wait (median of `repeats` timings)."""
    rates = []
    for _ in range(repeats):
        env = simpy.Environment()

        def proc():
            while True:
                yield env.timeout(1.0)  # noqa: B023  (the process runs within this iteration)

        for _ in range(100):
            env.process(proc())
        t0 = time.process_time()
        env.run(until=events / 100)
        rates.append(events / (time.process_time() - t0))
    return statistics.median(rates)


def figures_path() -> Path:
    """BENCH_FIGURES from the current directory, else from the source checkout the package is in."""
    if BENCH_FIGURES.is_file():
        return BENCH_FIGURES
    return Path(__file__).resolve().parents[2] / BENCH_FIGURES


def read_figures(path: Path | None = None) -> list[dict]:
    """The rows `--paper --write` wrote (empty if there is no such file)."""
    path = figures_path() if path is None else path
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def workload_kind(trace: bool) -> str:
    """The bench figures' workload column: a synthetic set or a trace replay."""
    return "trace" if trace else "synthetic"


class WallEstimate:
    """Wall seconds for simulated turns on this machine now: turns / (turns per bare event of the
    --paper figures for the model, system and workload kind (synthetic set or trace replay), with this
    install's solver) / the bare loop timed now. The slices are 1-2 node pairs of short trajectories;
    larger clusters and longer contexts cost more per turn, so read it as a lower bound."""

    def __init__(self, figures: list[dict] | None = None, bare_events_per_s: float | None = None):
        rows = read_figures() if figures is None else figures
        compiled = str(bool(net.COMPILED))
        self.per_bare_event: dict[tuple[str, str, str], float] = {}
        by_system: dict[tuple[str, str], list[float]] = {}
        for row in rows:  # the paper slices (the quickstart is a smaller DS 27B)
            if row["compiled"] == compiled and row["slice"] != "quickstart":
                ratio = float(row["turns_per_bare_event_median"])
                kind = row.get("workload") or "synthetic"  # files written before the column: synthetic only
                self.per_bare_event[(row["model"], row["system"], kind)] = ratio
                by_system.setdefault((row["system"], kind), []).append(ratio)
        self.by_system = {key: statistics.median(ratios) for key, ratios in by_system.items()}
        if not self.per_bare_event:
            self.bare_events_per_s = 0.0
        else:
            self.bare_events_per_s = bare_events_per_s or bare_simpy_events_per_s()

    def __bool__(self) -> bool:
        return bool(self.per_bare_event)

    def seconds(self, model: str, system: str, turns: int, trace: bool = False) -> float | None:
        """The model's figure for the system and workload kind, else the median over models; a trace
        replay without a trace figure falls back to the synthetic one."""
        ratio = None
        for kind in dict.fromkeys((workload_kind(trace), workload_kind(False))):
            ratio = self.per_bare_event.get((model, system, kind), self.by_system.get((system, kind)))
            if ratio:
                break
        return None if not ratio else turns / ratio / self.bare_events_per_s

"""The wall-time estimate printed before a long run (docs/capacity-planning.md#long-runs).

    from dpsim import run_estimate
    jobs = [run_estimate.Job.of(scenario, turns=run_estimate.workload_turns(scenario))]
    run_estimate.notice(jobs, "compare")   # a line for stderr when the estimate exceeds NOTICE_S, else None

The turns a command will simulate, times the bench's cost of a turn for the model, system and
workload kind: `dpsim.bench.WallEstimate`, from the figures `python -m dpsim.bench --paper --write`
keeps in docs/data/bench-paper.csv, over a bare SimPy loop timed now. `dpsim reproduce --list` uses
the same turn count and figures. The figures are CPU seconds of one core: on a shared machine the
wall time is longer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NOTICE_S = 60.0  # [choice] estimates under a minute are not printed: the progress bar is enough
SAMPLE_AGENTS = 256  # agents generated to count the turns of a larger synthetic set (mean turns per agent)
BARE_EVENTS = 20_000  # a short bare-loop timing (~20 ms), once per process

_TURNS_PER_AGENT: dict[tuple[str, str, int], float] = {}  # (scenario path, workload JSON, seed) -> mean turns
_TURNS: dict[tuple[str, str, int], int] = {}  # the same key -> all turns of that workload
_WALL = []  # the WallEstimate of this process, made on first use


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
    from dpsim import api

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
    """This process's `bench.WallEstimate` (false when there are no bench figures)."""
    if not _WALL:
        from dpsim.bench import WallEstimate, bare_simpy_events_per_s

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

"""Scenario-level reshaping of a trajectory set: how many agents, when they arrive, how fast time runs.

:func:`apply_workload_options` is a pure function (inputs are not modified) and deterministic for a
seed. It applies, in this order:

0. ``max_context`` (tokens): each trajectory stops before its first turn whose prompt + generation
   exceeds it (as a synthetic trajectory stops at MAL); a trajectory whose first turn already exceeds
   it is dropped. Real traces outgrow a model's context window (Claude Code sessions reach 894K tokens).
1. ``agents`` (N sessions). Fewer than there are: a seeded random sample of N, kept in the original
   order (with real arrival times the rate thins proportionally). More: every trajectory once plus
   N - len seeded random copies with ids ``<id>~<k>``; a copy keeps its original's arrival time and
   turns (its cached tokens are its own prefix hits, so copies share nothing).
2. ``time_scale``: arrival times and think times (and ``meta["turn_arrival_s"]``) are multiplied by
   it (0.5 = everything twice as dense; 0 = no think time, all at the first arrival).
3. ``aps`` (agents per second): arrival times are re-drawn as a Poisson process of that rate,
   the first at 0 + Exp(aps), in trajectory order; ``meta["turn_arrival_s"]`` moves with them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dpsim.workload.trajectory import Trajectory, Turn


def _copy(traj: Trajectory, **changes) -> Trajectory:
    return dataclasses.replace(traj, turns=list(changes.pop("turns", traj.turns)),
                               meta=dict(changes.pop("meta", traj.meta)), **changes)


def resample(trajs: list[Trajectory], agents: int, rng: np.random.Generator) -> list[Trajectory]:
    n = len(trajs)
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    if n == 0:
        raise ValueError("cannot resample an empty trajectory set")
    if agents <= n:
        keep = np.sort(rng.choice(n, size=agents, replace=False))
        return [_copy(trajs[i]) for i in keep]
    out = [_copy(t) for t in trajs]
    extra = rng.integers(0, n, size=agents - n)
    copies: dict[int, int] = {}
    for i in extra:
        i = int(i)
        copies[i] = copies.get(i, 0) + 1
        src = trajs[i]
        out.append(_copy(src, id=f"{src.id}~{copies[i]}", meta={**src.meta, "copy_of": src.id}))
    return out


def scale_time(traj: Trajectory, factor: float) -> Trajectory:
    turns = [Turn(t.input_tokens, t.cached_tokens, t.output_tokens, t.think_time_s * factor) for t in traj.turns]
    meta = dict(traj.meta)
    if "turn_arrival_s" in meta:
        meta["turn_arrival_s"] = [a * factor for a in meta["turn_arrival_s"]]
    arrival = None if traj.arrival_s is None else traj.arrival_s * factor
    return dataclasses.replace(traj, turns=turns, arrival_s=arrival, meta=meta)


def poisson_arrivals(trajs: list[Trajectory], aps: float, rng: np.random.Generator) -> list[Trajectory]:
    if not aps > 0:
        raise ValueError(f"aps must be > 0, got {aps}")
    times = np.cumsum(rng.exponential(1.0 / aps, size=len(trajs)))
    out = []
    for traj, t in zip(trajs, times):
        t = float(t)
        meta = dict(traj.meta)
        if "turn_arrival_s" in meta:
            base = traj.arrival_s if traj.arrival_s is not None else meta["turn_arrival_s"][0]
            meta["turn_arrival_s"] = [t + (a - base) for a in meta["turn_arrival_s"]]
        out.append(dataclasses.replace(traj, turns=list(traj.turns), arrival_s=t, meta=meta))
    return out


def truncate_context(trajs: list[Trajectory], max_context: int) -> list[Trajectory]:
    """Trajectories cut before their first turn with input + output > ``max_context``; empty ones dropped."""
    if max_context < 2:
        raise ValueError(f"max_context must be >= 2 tokens, got {max_context}")
    out = []
    for traj in trajs:
        keep = 0
        for turn in traj.turns:
            if turn.input_tokens + turn.output_tokens > max_context:
                break
            keep += 1
        if keep == len(traj.turns):
            out.append(_copy(traj))
        elif keep:
            meta = dict(traj.meta)
            meta["turns_cut"] = len(traj.turns) - keep
            for key in ("turn_arrival_s", "lines"):  # one entry per turn
                if key in meta:
                    meta[key] = meta[key][:keep]
            for key in ("subagent_turn_index", "subagent_start_index"):  # turn indices
                if key in meta:
                    meta[key] = [i for i in meta[key] if i < keep]
            if "subagent_turns" in meta:
                meta["subagent_turns"] = len(meta.get("subagent_turn_index", []))
            if "subagent_start_index" in meta:
                meta["subagents"] = len(meta["subagent_start_index"])
            out.append(_copy(traj, turns=traj.turns[:keep], meta=meta))
    return out


def apply_workload_options(trajs: list[Trajectory], agents: int | None = None, aps: float | None = None,
                           time_scale: float = 1.0, seed: int = 0,
                           max_context: int | None = None) -> list[Trajectory]:
    """Cut at ``max_context``, resample to ``agents``, scale time by ``time_scale``, re-draw arrivals
    at ``aps`` (see module doc)."""
    if time_scale is None:
        time_scale = 1.0
    if not time_scale >= 0 or time_scale == float("inf"):
        raise ValueError(f"time_scale must be finite and >= 0, got {time_scale}")
    rng_agents = np.random.default_rng([seed, 1])
    rng_arrivals = np.random.default_rng([seed, 2])
    if max_context is not None:
        trajs = truncate_context(trajs, int(max_context))
        if not trajs:
            raise ValueError(f"no trajectory has a first turn within max_context={max_context} tokens")
    out = resample(trajs, int(agents), rng_agents) if agents is not None else [_copy(t) for t in trajs]
    if time_scale != 1.0:
        out = [scale_time(t, time_scale) for t in out]
    if aps is not None:
        out = poisson_arrivals(out, float(aps), rng_arrivals)
    return out

"""Phase profiles: appends and generations scaled by where a turn sits in its trajectory
(docs/whatif.md#4-adaptive-prefilldecode-roles).

An RL rollout's prefill pressure is much higher in its first half than in its second (paper §8.1).
`workload.phase_profile` gives the trajectories that shape: the turns before `split` (a fraction of
each trajectory's turns) multiply their appended and generated tokens by the `first_` factors, the
rest by the `second_` factors. Contexts are rebuilt from the scaled appends and generations (each
turn's prompt is still every earlier append and generation plus its own append, all earlier ones
cached), and a trajectory stops before the turn whose prompt and generation would pass
`max_context_tokens` (the synthetic set's MAL), as scaling does in the paper's append study.
"""

from __future__ import annotations

from dpsim.workload.trajectory import Trajectory, agentic_turns


def apply_phase_profile(trajectories: list[Trajectory], split: float, first_append_scale: float,
                        first_gen_scale: float, second_append_scale: float, second_gen_scale: float,
                        max_context_tokens: int | None = None) -> list[Trajectory]:
    """The trajectories with every turn's append and generation scaled by its phase (in place)."""
    for trajectory in trajectories:
        turns = trajectory.turns
        if not turns:
            continue
        cut = split * len(turns)
        appends, gens = [], []
        for index, turn in enumerate(turns):
            a_scale, g_scale = ((first_append_scale, first_gen_scale) if index < cut
                                else (second_append_scale, second_gen_scale))
            appends.append(max(1, round(turn.new_tokens * a_scale)))
            gens.append(max(1, round(turn.output_tokens * g_scale)))
        rebuilt = agentic_turns(appends, gens)
        # keep each turn's own think time (tool latency), and the first turn's prefix if it had one
        prefix = turns[0].cached_tokens
        rebuilt = [type(t)(t.input_tokens + prefix, t.cached_tokens + prefix, t.output_tokens, old.think_time_s)
                   for t, old in zip(rebuilt, turns, strict=True)]
        if max_context_tokens is not None:  # contexts only grow, so the turns that fit are a prefix
            fits = sum(t.input_tokens + t.output_tokens <= max_context_tokens for t in rebuilt)
            rebuilt = rebuilt[: max(1, fits)]
        trajectory.turns = rebuilt
    return trajectories

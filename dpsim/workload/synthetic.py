"""Synthetic agentic trajectories for the paper's 32K / 48K / 64K sets (docs/architecture.md#paper-workload).

The paper gives only averages per set, and they are not mutually consistent: turns x (append + gen)
exceeds both the total tokens and MAL. A trajectory's context grows by append + gen per turn, so at
most three of {turns, context per turn, append per turn, MAL} can hold at once. We match, per set:

  - turns per trajectory (mean)             -> the number of requests
  - context tokens per turn (mean)          -> the hit KV each request loads: the storage load
  - generated tokens per turn (mean)        -> the decode work
  - MAL (every trajectory stops before it)

and let append tokens per turn follow from the growth needed to get from a first prompt of ~3K tokens
to MAL in that many turns. The appends come out smaller than the paper's (about 210 instead of 429 at
64K); `trajectory_stats` prints every statistic beside the paper's so the difference is visible.
With these choices, sum(context) per trajectory = turns x context per turn, which is the quantity the
paper's own storage-volume argument uses (docs/architecture.md#paper-unknowns).

Shapes (no distributions are published, these are [assumed]): turns per trajectory uniform in
[0.5, 1.5] x mean; first prompt lognormal (mean 3,000 tokens, cv 0.5); generated tokens lognormal
(cv 0.7); appends lognormal (cv 1.0) around the growth each trajectory needs to end between 90 % and
100 % of MAL. Trajectories are independent, so no KV is shared across trajectories (the paper
resamples and prepends a unique first turn for the same effect).
"""

from __future__ import annotations

import numpy as np

from dpsim.workload.trajectory import Trajectory, agentic_turns

# Published per-set averages (docs/architecture.md#paper-workload): turns, append/turn, gen/turn, total tokens, context/turn.
PAPER_SET_STATS = {
    32 * 1024: {"turns": 60, "append_tokens": 608, "gen_tokens": 148, "total_tokens": 28_639, "context_tokens": 17_183},
    48 * 1024: {"turns": 106, "append_tokens": 474, "gen_tokens": 172, "total_tokens": 42_607, "context_tokens": 25_120},
    64 * 1024: {"turns": 157, "append_tokens": 429, "gen_tokens": 176, "total_tokens": 55_958, "context_tokens": 32_721},
}
FIRST_PROMPT_MEAN_TOKENS = 3000  # [assumed] system prompt + task; makes context/turn come out right


def _lognormal(rng: np.random.Generator, mean: float, cv: float, size=None):
    sigma = np.sqrt(np.log1p(cv * cv))
    return rng.lognormal(np.log(mean) - sigma * sigma / 2, sigma, size)


def generate_trajectories(mal_tokens: int, agents: int, seed: int, append_scale: float = 1.0,
                          gen_scale: float = 1.0, think_time_s: float = 0.0) -> list[Trajectory]:
    """`agents` independent trajectories of the set with this MAL (32K, 48K or 64K).

    `append_scale` and `gen_scale` multiply every append / generation (the paper's scaling study);
    trajectories are truncated at MAL after scaling.
    """
    mal = int(mal_tokens)
    if mal not in PAPER_SET_STATS:
        raise ValueError(f"no published statistics for MAL {mal} tokens; expected one of 32K, 48K, 64K")
    stats = PAPER_SET_STATS[mal]
    rng = np.random.default_rng(seed)
    trajectories = []
    for j in range(agents):
        turns_target = max(2, int(round(stats["turns"] * rng.uniform(0.5, 1.5))))
        first = max(16, int(_lognormal(rng, FIRST_PROMPT_MEAN_TOKENS, 0.5)))
        final = mal * rng.uniform(0.9, 1.0)
        growth = max((final - first) / (turns_target - 1), 2.0)
        gens = np.maximum(1, np.round(_lognormal(rng, stats["gen_tokens"], 0.7, turns_target) * gen_scale)).astype(int)
        append_mean = max(growth - stats["gen_tokens"], 8.0)
        appends = np.maximum(1, np.round(_lognormal(rng, append_mean, 1.0, turns_target) * append_scale)).astype(int)
        appends[0] = max(1, int(round(first * append_scale)))
        # Truncate at MAL: keep turns while the prompt plus its generation fits.
        keep, context = 0, 0
        for a, g in zip(appends, gens):
            if context + a + g > mal:
                break
            context += a + g
            keep += 1
        keep = max(keep, 1)
        if appends[0] + gens[0] > mal:  # a single oversized first turn: shrink it to fit
            appends[0], gens[0] = max(1, mal - gens[0] - 1), min(gens[0], mal // 2)
        turns = agentic_turns([int(x) for x in appends[:keep]], [int(x) for x in gens[:keep]], think_time_s)
        trajectories.append(Trajectory(id=f"syn{mal // 1024}k-{seed}-{j}", turns=turns, meta={"mal": mal}))
    return trajectories


def trajectory_stats(trajectories: list[Trajectory]) -> dict[str, float]:
    """The statistics of docs/architecture.md#paper-workload for a set of trajectories (means)."""
    turns = [len(t.turns) for t in trajectories]
    appends = [turn.new_tokens for t in trajectories for turn in t.turns]
    gens = [turn.output_tokens for t in trajectories for turn in t.turns]
    contexts = [turn.cached_tokens for t in trajectories for turn in t.turns]
    totals = [t.total_tokens for t in trajectories]
    return {
        "trajectories": len(trajectories),
        "turns": float(np.mean(turns)),
        "append_tokens": float(np.mean(appends)),
        "gen_tokens": float(np.mean(gens)),
        "total_tokens": float(np.mean(totals)),
        "context_tokens": float(np.mean(contexts)),
        "hit_rate": float(np.sum(contexts) / np.sum([t.input_tokens for tr in trajectories for t in tr.turns])),
    }

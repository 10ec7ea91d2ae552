"""Tool latency drawn from real agentic sessions (docs/whatif.md#5-tool-latency-and-larger-working-sets).

The paper evaluated zero tool latency (the next turn starts as soon as generation ends). A fixed
latency per turn is `workload.tool_latency`; `workload.tool_latency_source: claude_code` instead
draws each turn's latency from the gaps between the LLM calls of real Claude Code sessions.

Source of the gaps: the public kv-cache-tester trace set (github.com/callanjfox/kv-cache-tester,
`traces/`, Apache-2.0; 710 sessions, the `think_time` of every request after a session's first:
47,832 gaps, seconds; traces/README.md lists this set). The table holds the percentiles 0..100 of
those gaps; a draw interpolates between them (inverse CDF). The gaps include people reading and
typing (p90 171 s, p99 3,040 s, max 21.5 h), which an RL rollout does not have, so draws are
conditioned on gaps up to `workload.tool_latency_max` (default 30 s, the range the issue asks for;
74 % of the gaps are at most 30 s).
"""

from __future__ import annotations

import numpy as np

from dpsim.workload.trajectory import Trajectory, Turn

# Percentiles 0, 1, ..., 100 of the gaps, seconds (recorded at 1 s resolution, so many repeat).
CLAUDE_CODE_GAP_PERCENTILES_S = (
    0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0,
    5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 8.0,
    8.0, 8.0, 8.0, 8.0, 9.0, 9.0, 9.0, 9.0, 10.0, 10.0, 10.0, 11.0, 11.0, 11.0, 12.0, 12.0, 12.0, 13.0,
    13.0, 14.0, 14.0, 15.0, 16.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 24.0, 25.0, 27.0, 29.0,
    32.0, 34.0, 37.0, 40.0, 44.0, 49.0, 54.0, 62.0, 67.0, 73.0, 84.0, 96.0, 110.0, 124.0, 130.0, 147.0,
    171.0, 191.0, 234.5, 301.7, 340.0, 472.0, 606.0, 886.0, 1504.0, 3040.0, 77590.0)
_PROBS = np.linspace(0.0, 1.0, len(CLAUDE_CODE_GAP_PERCENTILES_S))
SEED_OFFSET = 104_729  # the gaps' random stream is separate from the trajectories' (same turns either way)


def gap_cdf(seconds: float, percentiles_s=CLAUDE_CODE_GAP_PERCENTILES_S) -> float:
    """Fraction of gaps at most `seconds` under the piecewise-linear distribution of the table."""
    q = np.asarray(percentiles_s, dtype=float)
    k = int(np.searchsorted(q, seconds, side="right")) - 1
    if k < 0:
        return 0.0
    if k >= len(q) - 1:
        return 1.0
    probs = np.linspace(0.0, 1.0, len(q))
    return float(probs[k] + (seconds - q[k]) / (q[k + 1] - q[k]) * (probs[k + 1] - probs[k]))


def draw_gaps(rng: np.random.Generator, size: int, max_s: float,
              percentiles_s=CLAUDE_CODE_GAP_PERCENTILES_S) -> np.ndarray:
    """`size` gaps (seconds) from the table's distribution, conditioned on gaps <= `max_s`."""
    q = np.asarray(percentiles_s, dtype=float)
    u = rng.uniform(0.0, gap_cdf(max_s, q), size)
    return np.minimum(np.interp(u, np.linspace(0.0, 1.0, len(q)), q), max_s)


def with_claude_code_gaps(trajectories: list[Trajectory], seed: int, max_s: float) -> list[Trajectory]:
    """The same trajectories, every turn after the first preceded by a drawn tool latency."""
    rng = np.random.default_rng(seed + SEED_OFFSET)
    out = []
    for t in trajectories:
        gaps = draw_gaps(rng, len(t.turns), max_s)
        turns = [Turn(u.input_tokens, u.cached_tokens, u.output_tokens, float(g) if i else 0.0)
                 for i, (u, g) in enumerate(zip(t.turns, gaps))]
        out.append(Trajectory(t.id, turns, t.arrival_s, dict(t.meta)))
    return out

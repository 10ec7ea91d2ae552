"""The workload interface: agentic trajectories made of turns.

A trajectory is one agent's session: an ordered list of turns. Each turn sends a prompt of
`input_tokens`, of which the first `cached_tokens` already have KV in storage (a prefix hit), and
generates `output_tokens`. The next turn arrives `think_time_s` after the previous turn's last token
(tool or environment latency). The first turn arrives at the trajectory's `arrival_s` (None: the
workload's arrival process decides, e.g. all at t=0 offline or Poisson online).

Every workload source (the synthetic generator, the trace readers) produces these objects and
nothing else, so the simulator never knows where a trajectory came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Turn:
    """One LLM call of an agent."""

    input_tokens: int  # whole prompt length (context + appended tokens)
    cached_tokens: int  # prefix of the prompt whose KV is already in storage
    output_tokens: int  # tokens generated (>= 1)
    think_time_s: float = 0.0  # delay between the previous turn's end and this turn's arrival

    def __post_init__(self) -> None:
        if self.input_tokens < 1 or self.output_tokens < 1:
            raise ValueError(f"turn needs input_tokens >= 1 and output_tokens >= 1, got {self}")
        if not 0 <= self.cached_tokens <= self.input_tokens:
            raise ValueError(f"turn needs 0 <= cached_tokens <= input_tokens, got {self}")
        if self.think_time_s < 0:
            raise ValueError(f"turn needs think_time_s >= 0, got {self}")

    @property
    def new_tokens(self) -> int:
        """Prompt tokens that must be computed (cache misses)."""
        return self.input_tokens - self.cached_tokens


@dataclass(slots=True)
class Trajectory:
    """One agent's session."""

    id: str
    turns: list[Turn]
    arrival_s: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        last = self.turns[-1]
        return last.input_tokens + last.output_tokens


def agentic_turns(appends: list[int], gens: list[int], think_time_s: float = 0.0) -> list[Turn]:
    """Turns of a pure agentic trajectory: turn i's prompt is all earlier appends and generations
    (cached) plus append_i (new)."""
    turns: list[Turn] = []
    context = 0
    for append, gen in zip(appends, gens, strict=True):
        turns.append(Turn(context + append, context, gen, think_time_s if turns else 0.0))
        context += append + gen
    return turns

"""Tail-aware scheduling: earliest deadline first (docs/whatif.md#6-tail-aware-scheduling).

The paper's scheduler (paper §5) places requests in arrival order and picks a PE in two tiers: among
engines that are not overloaded (tok <= beta), those whose node's storage read queue is short
(<= alpha) first, then the smallest tok. Neither tier estimates when the request's first token will
come, and a PE's FIFO serves requests in the order their KV finished loading, not in the order they
arrived. The paper notes that TTFT percentiles at large scale could be better (paper §8.1).

`policy.dispatch_order: deadline` targets the tail with two changes, and nothing else:

1. PE choice by the earliest expected start: for each engine that is not overloaded (the same
   beta rule), the time until its node could have read the hit KV and the engine could have worked
   off its queue, max(read_q(node) / read rate, tok / prefill rate); the smallest wins (ties: tok,
   then index). Rates are the ones the paper's alpha and beta are expressed in (paper §5).
2. Each PE serves its ready requests by TTFT deadline (arrival + slo.ttft; one SLO for all, so
   oldest first) instead of in load-completion order.

DE choice and read side are the paper's.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from dpsim.kernel.policies.scheduler import DualPathScheduler, EngineView


class DeadlineScheduler(DualPathScheduler):
    """The DualPath scheduler with the PE chosen by earliest expected start (see module docstring)."""

    def __init__(self, alpha_tokens: float, beta_tokens: float, read_tokens_per_s: float,
                 prefill_tokens_per_s: float, z_slack: float = 1.05, dual_path: bool = True):
        super().__init__(alpha_tokens, beta_tokens, z_slack, dual_path)
        if read_tokens_per_s <= 0 or prefill_tokens_per_s <= 0:
            raise ValueError("read and prefill rates must be positive")
        self.read_tokens_per_s = read_tokens_per_s
        self.prefill_tokens_per_s = prefill_tokens_per_s

    def expected_start_s(self, engine: EngineView) -> float:
        """Seconds until a request placed on `engine` could start prefilling, from reported state."""
        return max(engine.node.read_queue_tokens / self.read_tokens_per_s, engine.tok / self.prefill_tokens_per_s)

    def pick_prefill(self, engines: Sequence[EngineView]):
        candidates = [e for e in engines if e.tok <= self.beta_tokens]
        if not candidates:
            return None
        return min(candidates, key=lambda e: (self.expected_start_s(e), e.tok, e.index))


def enqueue_by_deadline(ready: list, req) -> None:
    """Insert `req` into a PE's ready list kept in arrival (deadline) order; equal arrivals keep
    their insertion order."""
    keys = [r.t_arrive for r in ready]
    ready.insert(bisect.bisect_right(keys, req.t_arrive), req)

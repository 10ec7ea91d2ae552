"""Request placement: which prefill engine, which decode engine, and which side reads the KV.

A scheduler is a small object with four methods over engines' reported state (tok, seq, free HBM,
the node's storage read queue). It never touches engine internals, so a new policy adds a class here
and nothing in the engines. `DualPathScheduler` follows the paper's rules (docs/architecture.md#paper-scheduler) one by one;
`RoundRobinScheduler` is the "no scheduling" ablation and the Basic system's placement.
`SCHEDULERS` maps each `SchedulerName` a scenario may give to its factory (docs/architecture.md,
"Adding a policy").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dpsim.kernel.entities import ReadSide
from dpsim.kernel.policies.prefill_pool import PrefillPool
from dpsim.kernel.resources.hardware import Node
from dpsim.scenario.config import SchedulerName


class EngineView(Protocol):
    """What a scheduler may read of an engine: its load, its free HBM and its node's read queue."""

    index: int
    tok: int
    seq: int
    hbm_free: float
    node: Node


class GroupView(Protocol):
    """What a scheduler may read of a decode EP group: its engines and their total tok."""

    tok: int  # sum of its engines' tok, kept by the simulation
    engines: Sequence[EngineView]


class DualPathScheduler:
    """The paper's rules (docs/architecture.md#paper-scheduler): PE choice by alpha/beta, DE choice by
    group load and Z, read side by queue."""

    def __init__(self, alpha_tokens: float, beta_tokens: float, z_slack: float = 1.05, dual_path: bool = True):
        self.alpha_tokens = alpha_tokens
        self.beta_tokens = beta_tokens
        self.z_slack = z_slack
        self.dual_path = dual_path

    def prefill_available(self, engines: Sequence[EngineView]) -> bool:
        """Whether `pick_prefill` would return an engine (some tok <= beta): a cheap test that spares
        the decode-side search while every PE is overloaded (O(engines) per blocked dispatch matters
        at 48P96D)."""
        beta = self.beta_tokens
        for e in _candidates(engines):  # a loop, not any() over a generator: it runs once per dispatch
            if e.tok <= beta:
                return True
        return False

    def pick_prefill(self, engines: Sequence[EngineView]):
        """Engines with tok > beta are overloaded and get nothing. Prefer engines whose node's read
        queue is <= alpha (its storage NIC would soon idle), smallest tok first; else the smallest tok
        among the rest; None if every engine is overloaded."""
        # One pass, min by (tok, index) in each pool; from a PrefillPool, over each node's leader only.
        beta, alpha = self.beta_tokens, self.alpha_tokens
        best_short = best_other = None
        for e in _candidates(engines):
            tok = e.tok
            if tok > beta:
                continue
            if e.node.read_queue_tokens <= alpha:
                if best_short is None or tok < best_short.tok or (tok == best_short.tok and e.index < best_short.index):
                    best_short = e
            elif best_short is None and (best_other is None or tok < best_other.tok
                                         or (tok == best_other.tok and e.index < best_other.index)):
                best_other = e  # only wanted while no short-queue engine has been seen
        return best_short if best_short is not None else best_other

    def pick_decode(self, groups: Sequence[GroupView], tokens: int, hbm_bytes: float):
        """The group with the smallest total tok; inside it, Z = z_slack x (tokens + sum tok) / #DEs;
        among DEs with enough free HBM that stay <= Z, the fewest requests; if all would exceed Z, the
        smallest tok among those with HBM; None if no DE of that group has HBM."""
        best = groups[0]
        group_tok = best.tok
        for g in groups:
            tok = g.tok
            if tok < group_tok or (tok == group_tok and g.engines[0].index < best.engines[0].index):
                best, group_tok = g, tok
        group = best.engines
        # One pass over the group (no lists, no key tuples): the min by (seq, tok, index) among DEs with
        # HBM under Z, and, while none is under Z, the min by (tok, index) among DEs with HBM.
        z = self.z_slack * (tokens + group_tok) / len(group)
        best_under: EngineView | None = None
        best_other: EngineView | None = None
        for e in group:
            if e.hbm_free < hbm_bytes:
                continue
            tok = e.tok
            if tok + tokens <= z:
                b = best_under
                if b is None or e.seq < b.seq or (e.seq == b.seq and (tok < b.tok or (tok == b.tok and e.index < b.index))):
                    best_under = e
            elif best_under is None and (best_other is None or tok < best_other.tok
                                         or (tok == best_other.tok and e.index < best_other.index)):
                best_other = e  # only wanted while no DE under Z has been seen
        return best_under if best_under is not None else best_other

    def pick_read_side(self, pe: EngineView, de: EngineView) -> ReadSide:
        """The side whose node has the shorter storage read queue (ties: PE side)."""
        if not self.dual_path:
            return ReadSide.PREFILL
        return ReadSide.DECODE if de.node.read_queue_tokens < pe.node.read_queue_tokens else ReadSide.PREFILL


def _candidates(engines: Sequence[EngineView]) -> Sequence[EngineView]:
    """The engines the DualPath PE rule needs to look at: each node's least-loaded one when the
    simulation's `PrefillPool` gives them (the rule picks no other), else all of them."""
    return engines.leaders() if type(engines) is PrefillPool else engines


class RoundRobinScheduler:
    """Round-robin placement (the "no scheduling" ablation). With dual-path loading the read side
    alternates between the PE and the DE node."""

    def __init__(self, dual_path: bool = False):
        self.dual_path = dual_path
        self._next_pe = 0
        self._next_de = 0
        self._next_side = 0

    def prefill_available(self, engines: Sequence[EngineView]) -> bool:
        return bool(engines)

    def pick_prefill(self, engines: Sequence[EngineView]):
        engine = engines[self._next_pe % len(engines)]
        self._next_pe += 1
        return engine

    def pick_decode(self, groups: Sequence[GroupView], tokens: int, hbm_bytes: float):
        engines = [e for g in groups for e in g.engines]
        for offset in range(len(engines)):
            engine = engines[(self._next_de + offset) % len(engines)]
            if engine.hbm_free >= hbm_bytes:
                self._next_de += offset + 1
                return engine
        return None

    def pick_read_side(self, pe: EngineView, de: EngineView) -> ReadSide:
        if not self.dual_path:
            return ReadSide.PREFILL
        self._next_side += 1
        return ReadSide.DECODE if self._next_side % 2 == 0 else ReadSide.PREFILL


class Scheduler(Protocol):
    """What the simulation asks a global scheduler (the engines are `EngineView`s).

    `prefill_available` may depend only on the prefill engines' tok and on which engines are in the
    pool: once it says False, the simulation does not ask again until an engine's tok falls or the
    pool gains engines (`Simulation.prefill_pool_version`). `pick_decode` gets the decode groups open
    for placement (`GroupView`s)."""

    def prefill_available(self, engines: Sequence[Any]) -> bool: ...
    def pick_prefill(self, engines: Sequence[Any]) -> Any: ...
    def pick_decode(self, groups: Sequence[Any], tokens: int, hbm_bytes: float) -> Any: ...
    def pick_read_side(self, pe: Any, de: Any) -> ReadSide: ...


@dataclass(frozen=True)
class SchedulerInputs:
    """What a scheduler factory may use: the thresholds in tokens (docs/architecture.md#paper-scheduler) and the switches."""

    alpha_tokens: float  # read-queue threshold: tokens the node's storage NIC reads in policy.alpha
    beta_tokens: float  # PE overload threshold: tokens one prefill GPU computes in policy.beta
    z_slack: float  # DE balance target multiplier
    dual_path: bool  # reads may go to the decode side


# The registry: one factory per name a scenario may give (policy.scheduler).
SCHEDULERS: dict[SchedulerName, Callable[[SchedulerInputs], Scheduler]] = {
    SchedulerName.DUALPATH: lambda i: DualPathScheduler(i.alpha_tokens, i.beta_tokens, i.z_slack,
                                                        dual_path=i.dual_path),
    SchedulerName.ROUND_ROBIN: lambda i: RoundRobinScheduler(dual_path=i.dual_path),
}

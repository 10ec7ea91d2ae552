"""Adaptive prefill/decode roles: nodes that switch role as the load shifts.

See docs/whatif.md#4-adaptive-prefilldecode-roles.

The paper fixes each node's role for a run (paper §2) and notes that an RL rollout's prefill
pressure is much higher in its first half (paper §8.1). With `policy.adaptive_pd.mode: backlog`
every node has engines for both roles, one set active. Every `check_every` a controller looks at
the prefill backlog: the prompt tokens queued for prefill (dispatched to a PE or waiting for one),
in seconds of work per active prefill GPU at the scheduler's prefill rate (the rate beta is
expressed in, paper §5).

- backlog > `backlog_high`, and the decode nodes left would hold at most `decode_hbm_limit` of
  their KV HBM: the decode node with the fewest requests turns prefill;
- backlog < `backlog_low`, and decode is under pressure (its engines hold more than
  `decode_hbm_limit` of their KV HBM, or a decode step takes longer than the TPOT SLO): the prefill
  node with the fewest queued tokens turns decode.

A switch takes the node out of placement at once, waits until its engines have finished every
request they hold (drain), then leaves the node idle for `switch_cost` (restarting the engine in
its other role: KV pool, CUDA graphs, warm-up; weights stay, both roles run the same model) before
it takes work in its new role. One switch at a time; at least one node keeps each role.

What it needs: a node must be a whole engine group in both roles, so MoE models need
cluster.prefill_ep_nodes = cluster.decode_ep_nodes = 1 (dense models are one group per GPU anyway).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np

from dpsim.kernel.engines.decode import DecodeGroup
from dpsim.kernel.engines.prefill import PrefillGroup
from dpsim.kernel.entities import DecodeEngine, PrefillEngine


class NodeRole(StrEnum):
    """What a node's engines do now; the values are the letters of the summary's `role_log`."""

    PREFILL = "P"
    DECODE = "D"
    SWITCHING = "switching"  # draining its old role's work, then warming up the other


class RoleController:
    """Builds each node's engines for its other role and runs the switching process."""

    def __init__(self, sim: Any, error: type[Exception]):
        """`sim`: the dpsim.kernel.simulation.Simulation it steers (engines may not import it, so untyped
        here); `error`: the exception a configuration that cannot switch raises."""
        self.sim = sim
        self.cfg = sim.scenario.policy.adaptive_pd
        cl = sim.scenario.cluster
        if sim.model.moe and (cl.prefill_ep_nodes != 1 or cl.decode_ep_nodes != 1):
            raise error(f"{sim.scenario.source_path or '<scenario>'}: policy.adaptive_pd.mode = {self.cfg.mode.value}: "
                        f"a node must be a whole engine group in both roles; set cluster.prefill_ep_nodes and "
                        f"cluster.decode_ep_nodes to 1 (got {cl.prefill_ep_nodes} and {cl.decode_ep_nodes}) "
                        f"for the MoE model {sim.scenario.model.name}")
        self.prefill_groups = _by_node(sim.prefill_groups)
        self.decode_groups = _by_node(sim.decode_groups)
        # The other role's engines, dormant until a switch: numbered after the existing ones.
        dormant_p, _ = sim._make_groups(sim.cluster.decode_nodes, 1, PrefillGroup, PrefillEngine, "prefill")
        dormant_d, _ = sim._make_groups(sim.cluster.prefill_nodes, 1, DecodeGroup, DecodeEngine, "decode")
        for groups, dormant, by_node in ((sim.prefill_groups, dormant_p, self.prefill_groups),
                                         (sim.decode_groups, dormant_d, self.decode_groups)):
            engines_before = sum(len(g.engines) for g in groups)
            for offset, group in enumerate(dormant):
                group.index = len(groups) + offset
                for engine in group.engines:
                    engine.index += engines_before
            groups.extend(dormant)
            by_node.update(_by_node(dormant))
        self.role = ({n.name: NodeRole.PREFILL for n in sim.cluster.prefill_nodes}
                     | {n.name: NodeRole.DECODE for n in sim.cluster.decode_nodes})
        turns = [t for tr in sim.trajectories for t in tr.turns]
        cached = int(np.mean([t.cached_tokens for t in turns])) if turns else 0
        new = max(1, int(np.mean([t.new_tokens for t in turns]))) if turns else 1
        self.prefill_tokens_per_s = sim.prefill_groups[0].gpu.prefill_tokens_per_s(cached, new)
        self.log: list[tuple[float, str, str, str]] = []  # (time, node, event, role)
        self.prefill_nodes_at: list[tuple[float, int]] = [(0.0, len(sim.cluster.prefill_nodes))]
        self.switching_node_s = 0.0

    # ------------------------------------------------------------------------------ observation
    def prefill_backlog_s(self) -> float:
        """Queued prompt tokens over the active prefill GPUs' rate, in seconds."""
        sim = self.sim
        engines = sim.prefill_pool
        queued = sum(r.turn.input_tokens for r in sim.queue) + sum(e.tok for e in engines)
        return queued / (max(len(engines), 1) * self.prefill_tokens_per_s)

    def _decode_hbm_use(self, without: str | None = None) -> float:
        """Fraction of the active decode engines' KV HBM in use (as if `without`'s engines had left the pool)."""
        held = total = 0.0
        for group in self.sim.decode_pool:
            capacity = self.sim._hbm_for_kv(group.gpu, "decode")
            for e in group.engines:
                held += capacity - e.hbm_free
                total += 0.0 if e.node.name == without else capacity
        return held / total if total > 0 else float("inf")

    def decode_step_s(self) -> float:
        """The longest current decode step among the active decode groups (0 when none decodes)."""
        steps = [g._step_seconds() for g in self.sim.decode_pool if any(e.active for e in g.engines)]
        return max(steps, default=0.0)

    def decide(self) -> tuple[str, NodeRole] | None:
        """(node, new role) of the switch to make now, or None."""
        backlog = self.prefill_backlog_s()
        prefill = [n for n, r in self.role.items() if r is NodeRole.PREFILL]
        decode = [n for n, r in self.role.items() if r is NodeRole.DECODE]
        if backlog > self.cfg.backlog_high and len(decode) > 1:
            node = min(decode, key=lambda n: (sum(e.seq for g in self.decode_groups[n] for e in g.engines), n))
            if self._decode_hbm_use(without=node) <= self.cfg.decode_hbm_limit:
                return node, NodeRole.PREFILL
        elif backlog < self.cfg.backlog_low and len(prefill) > 1 and (
                self._decode_hbm_use() > self.cfg.decode_hbm_limit
                or self.decode_step_s() > self.sim.scenario.slo.tpot):
            node = min(prefill, key=lambda n: (sum(e.tok for g in self.prefill_groups[n] for e in g.engines), n))
            return node, NodeRole.DECODE
        return None

    # --------------------------------------------------------------------------------- process
    def run(self):
        sim, env = self.sim, self.sim.env
        while sim.turns_finished < sim.turns_total:
            yield env.timeout(self.cfg.check_every)
            move = self.decide()
            if move is not None:
                yield from self._switch(*move)

    def _switch(self, node: str, new_role: NodeRole):
        sim, env = self.sim, self.sim.env
        t0 = env.now
        self.role[node] = NodeRole.SWITCHING
        self.log.append((t0, node, "drain", new_role))
        if new_role is NodeRole.DECODE:
            leaving = [e for g in self.prefill_groups[node] for e in g.engines]
            sim.prefill_pool.remove_node(node)
            self._count_prefill(-1)
        else:
            leaving = [e for g in self.decode_groups[node] for e in g.engines]
            sim.decode_pool[:] = [g for g in sim.decode_pool if g not in self.decode_groups[node]]
        poll_s = self.cfg.check_every / 10
        while any(e.seq > 0 for e in leaving):
            yield env.timeout(poll_s)
        if self.cfg.switch_cost > 0:
            yield env.timeout(self.cfg.switch_cost)
        self.switching_node_s += env.now - t0
        self.role[node] = new_role
        self.log.append((env.now, node, "ready", new_role))
        if new_role is NodeRole.DECODE:
            sim.decode_pool.extend(self.decode_groups[node])
        else:
            sim.add_prefill_engines(e for g in self.prefill_groups[node] for e in g.engines)
            self._count_prefill(+1)
        sim.dispatch()

    def _count_prefill(self, change: int) -> None:
        self.prefill_nodes_at.append((self.sim.env.now, self.prefill_nodes_at[-1][1] + change))

    def summary(self, end_s: float) -> dict:
        """Switches made, node-seconds spent draining and switching, time-weighted mean prefill nodes."""
        times = [t for t, _ in self.prefill_nodes_at] + [end_s]
        counts = [c for _, c in self.prefill_nodes_at]
        span = max(end_s - times[0], 1e-12)
        mean = sum(c * max(b - a, 0.0) for c, a, b in zip(counts, times, times[1:])) / span
        return {"role_switches": sum(1 for _, _, event, _ in self.log if event == "ready"),
                "role_switching_node_s": round(self.switching_node_s, 6),
                "prefill_nodes_mean": round(mean, 6),
                # "time:node:event:role" entries, one string (tables keep it as one cell)
                "role_log": " ".join(f"{t:.1f}:{node}:{event}:{role}" for t, node, event, role in self.log)}


def _by_node(groups) -> dict[str, list]:
    out: dict[str, list] = {}
    for group in groups:
        out.setdefault(group.engines[0].node.name, []).append(group)
    return out

"""Loading a split read's KV into the prefill GPU.

Split reads: docs/whatif.md#2-split-reads-one-requests-kv-from-both-paths-at-once.

A split read leaves part of the hit KV in the PE node's DRAM buffer and part in the DE node's. Each
part moves into the PE's HBM over its own path at once, as a whole-request read of that side would
(paper §3): the PE part by loopback through the PE's compute NIC, the DE part (and the KV of earlier
chunks, which the hand-off already sent to the DE buffer) over DE DRAM -> DE CNIC -> PE CNIC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

if TYPE_CHECKING:
    from dpsim.kernel.context import SimContext
    from dpsim.kernel.entities import PrefillEngine, Request


def load_split_kv(sim: SimContext, engine: PrefillEngine, req: Request) -> simpy.Event:
    """An event that fires when both parts of the request's computed KV are in the PE's HBM."""
    kv = sim.model.kv_bytes_per_token
    pe_part = (req.turn.cached_tokens - req.hit_tokens_de) * kv
    de_part = (req.hit_tokens_de + req.prefilled) * kv
    remote = sim.cluster.remote_dram_to_gpu_path(req.de.node, req.de.gpu, engine.node, engine.gpu)
    return simpy.AllOf(sim.env, [sim.move(remote, de_part, "kv_de_to_pe"),
                                 sim.move(sim.cluster.loopback_path(engine.node, engine.gpu), pe_part, "kv_h2d_pe")])

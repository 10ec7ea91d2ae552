"""The entities the simulation moves: requests (one turn of one agent) and engines (one GPU each)."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import simpy

from dpsim.kernel.resources.hardware import Node
from dpsim.workload.trajectory import Turn


class ReadSide(StrEnum):
    """Which node reads a request's hit KV from storage (the PE read path or the DE read path,
    docs/architecture.md#paper-data-paths); the values are the letters of the turns table's `read_side` column."""

    PREFILL = "P"
    DECODE = "D"
    SPLIT = "S"  # part on each node at once (split reads, docs/whatif.md#2-split-reads-one-requests-kv-from-both-paths-at-once)


class EngineGroup(Protocol):
    """The EP group an engine belongs to, as the entities see it (dpsim.kernel.engines has the classes)."""

    index: int

    def wake(self) -> None: ...


class DecodeEngineGroup(EngineGroup, Protocol):
    """A decode engine's EP group: also the sum of its engines' tok (the scheduler's group load)."""

    tok: int


class Request:
    """One turn in flight. Timestamps are simulated seconds; None until reached.

    Life: arrive -> dispatch (PE, DE and read side chosen) -> read (storage -> buffer) -> prefill
    (possibly in chunks; the first token is computed at the end of the last chunk) -> KV at the decode
    node -> one-shot H2D -> decode steps -> finish (last token) -> write-back.
    """

    __slots__ = ("id", "trajectory_id", "turn_index", "turn", "done", "pe", "de", "read_node", "read_side",
                 "prefilled", "t_arrive", "t_dispatch", "t_read_start", "t_read_end", "t_prefill_start",
                 "t_first_token", "t_kv_at_decode", "t_second_token", "t_finish", "decode_remaining",
                 "decode_kv_read_bytes", "decode_attn_flops", "chunks", "pe_buffer_held", "alloc_wait_s",
                 "tier_hit_tokens", "hit_tokens_de")

    def __init__(self, rid: int, trajectory_id: str, turn_index: int, turn: Turn, done: simpy.Event, now: float):
        self.id = rid
        self.trajectory_id = trajectory_id
        self.turn_index = turn_index
        self.turn = turn
        self.done = done
        self.pe: PrefillEngine | None = None
        self.de: DecodeEngine | None = None
        self.read_node: Node | None = None
        self.read_side: ReadSide | None = None  # chosen at dispatch
        self.hit_tokens_de = 0  # hit tokens the DE node reads: 0 (side P), all (D) or part (S, split reads)
        self.prefilled = 0  # new tokens prefilled so far
        self.chunks = 0
        self.pe_buffer_held = False  # the PE node's DRAM buffer holds this request's hit KV
        self.alloc_wait_s = 0.0  # time spent waiting for DRAM buffer space (the TTFT's allocation part)
        self.tier_hit_tokens = 0  # hit KV found in the DRAM tier (dpsim.kernel.dram_tier), read from there
        self.t_arrive = now
        self.t_dispatch: float | None = None
        self.t_read_start: float | None = None
        self.t_read_end: float | None = None
        self.t_prefill_start: float | None = None
        self.t_first_token: float | None = None
        self.t_kv_at_decode: float | None = None
        self.t_second_token: float | None = None
        self.t_finish: float | None = None
        self.decode_remaining = 0
        self.decode_kv_read_bytes = 0.0
        self.decode_attn_flops = 0.0

    @property
    def new_tokens(self) -> int:
        return self.turn.new_tokens

    @property
    def unprefilled(self) -> int:
        return self.turn.new_tokens - self.prefilled


class PrefillEngine:
    """A prefill GPU: its FIFO of requests whose KV is loaded, and the load the scheduler sees."""

    __slots__ = ("index", "node", "gpu", "group", "ready", "tok", "seq", "hbm_free")

    def __init__(self, index: int, node: Node, gpu: int, group: EngineGroup, hbm_free: float):
        self.index = index
        self.node = node
        self.gpu = gpu
        self.group = group
        self.ready: list[Request] = []
        self.tok = 0  # tokens of unfinished (dispatched, not yet prefilled) requests
        self.seq = 0  # number of unfinished requests
        self.hbm_free = hbm_free  # bytes; only whole-prompt prefill holds KV here

    def __repr__(self) -> str:
        return f"PE({self.node.name}.{self.gpu})"


class DecodeEngine:
    """A decode GPU: its running batch, reserved HBM, and the load the scheduler sees."""

    __slots__ = ("index", "node", "gpu", "group", "active", "tok", "seq", "hbm_free", "kv_read_bytes",
                 "attn_flops")

    def __init__(self, index: int, node: Node, gpu: int, group: DecodeEngineGroup, hbm_free: float):
        self.index = index
        self.node = node
        self.gpu = gpu
        self.group = group
        self.active: list[Request] = []
        self.tok = 0
        self.seq = 0
        self.hbm_free = hbm_free
        self.kv_read_bytes = 0.0  # sum over the batch of KV bytes read per step
        self.attn_flops = 0.0

    def __repr__(self) -> str:
        return f"DE({self.node.name}.{self.gpu})"

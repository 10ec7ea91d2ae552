"""A DRAM cache tier in front of storage, in the style of a Mooncake store (docs/whatif.md#1-a-dram-cache-tier-in-front-of-storage).

The paper's SGL(MC) baseline (paper §8) ran SGLang over a Mooncake store: a cluster-wide pool of host
DRAM (1.5 TB per node) that holds KV blocks in front of the SSD store. Here:

- every node lends `capacity_per_node - reserved_per_node` of DRAM to the pool (the reserve stands for
  other state, e.g. an RL rollout's offloaded training state);
- a trajectory's blocks live on one owning node, chosen by a stable hash of its id (one owner per
  trajectory keeps a request's hit KV in one transfer; a store that stripes objects over nodes
  spreads the same bytes over more NICs);
- each node evicts the least recently used Full Block when its share is full (`NodeLru`);
- a request's hit KV is looked up when it is dispatched: the blocks in the pool are read from the
  owner's DRAM over the compute network by RDMA (owner DRAM -> owner compute NIC -> reader's compute
  NIC -> reader's DRAM buffer), the rest from storage through the reader's storage NIC as before; the
  blocks read from storage are put in the pool (read-through), and so is each turn's new KV when it is
  written back (write-through; storage keeps everything, as in the paper's experiments).

Switched off (the default) none of this exists and the simulator is unchanged.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from itertools import count
from typing import TYPE_CHECKING

from dpsim.kernel.entities import ReadSide
from dpsim.kernel.resources.elements import Link

if TYPE_CHECKING:
    from dpsim.kernel.entities import Request
    from dpsim.kernel.resources.hardware import Cluster, Node


class NodeLru:
    """LRU by block over one node's share of the pool, in blocks.

    Every access touches a run of consecutive blocks of one trajectory at one instant, in index order
    (a prefix read, a write-back of new blocks). The blocks of one touch stay together as a run, so
    an access costs O(runs of that trajectory), not O(blocks); eviction takes the lowest blocks of the
    oldest run first, which is exactly what a per-block LRU list does with such accesses
    (tests/test_dram_tier.py checks it against a per-block list)."""

    def __init__(self, capacity_blocks: int):
        self.capacity_blocks = capacity_blocks
        self.used_blocks = 0
        self.peak_blocks = 0
        self.evicted_blocks = 0
        # run id -> (trajectory, intervals [lo, hi) in index order); oldest run first.
        self._runs: OrderedDict[int, tuple[str, list[list[int]]]] = OrderedDict()
        self._runs_of: dict[str, list[int]] = {}
        self._ids = count()

    def resident(self, trajectory: str, lo: int, hi: int) -> list[tuple[int, int]]:
        """The resident parts of blocks [lo, hi) of `trajectory`, as (lo, hi) intervals."""
        found = []
        for run in self._runs_of.get(trajectory, ()):
            for a, b in self._runs[run][1]:
                if a < hi and b > lo:
                    found.append((max(a, lo), min(b, hi)))
        return sorted(found)

    def touch(self, trajectory: str, lo: int, hi: int) -> None:
        """Blocks [lo, hi) were just used, in index order: make them the most recent, inserting the
        absent ones and evicting least recently used blocks to make room."""
        if hi - lo > self.capacity_blocks:
            lo = hi - self.capacity_blocks  # the earliest blocks of the touch are evicted by the later ones
        if hi <= lo:
            return
        self._remove(trajectory, lo, hi)
        self._evict(self.used_blocks + (hi - lo) - self.capacity_blocks)
        run = next(self._ids)
        self._runs[run] = (trajectory, [[lo, hi]])
        self._runs_of.setdefault(trajectory, []).append(run)
        self.used_blocks += hi - lo
        self.peak_blocks = max(self.peak_blocks, self.used_blocks)

    def _remove(self, trajectory: str, lo: int, hi: int) -> None:
        for run in list(self._runs_of.get(trajectory, ())):
            kept = []
            for a, b in self._runs[run][1]:
                if a < hi and b > lo:
                    self.used_blocks -= min(b, hi) - max(a, lo)
                    kept += [[a, lo]] if a < lo else []
                    kept += [[hi, b]] if b > hi else []
                else:
                    kept.append([a, b])
            self._set(run, kept)

    def _evict(self, blocks: int) -> None:
        while blocks > 0:
            run, (_, intervals) = next(iter(self._runs.items()))
            first = intervals[0]
            take = min(blocks, first[1] - first[0])
            first[0] += take
            blocks -= take
            self.used_blocks -= take
            self.evicted_blocks += take
            self._set(run, [iv for iv in intervals if iv[1] > iv[0]])

    def _set(self, run: int, intervals: list[list[int]]) -> None:
        if intervals:
            self._runs[run][1][:] = intervals
            return
        trajectory = self._runs.pop(run)[0]
        runs = self._runs_of[trajectory]
        runs.remove(run)
        if not runs:
            del self._runs_of[trajectory]


class DramTier:
    """The pool over all nodes: lookups at dispatch, the transfers' paths, and the run's counts."""

    def __init__(self, cluster: Cluster, capacity_per_node_bytes: float, reserved_per_node_bytes: float,
                 block_tokens: int, block_bytes: float):
        self.cluster = cluster
        self.nodes: list[Node] = cluster.nodes
        self.block_tokens = block_tokens
        self.block_bytes = block_bytes
        self.pool_bytes_per_node = capacity_per_node_bytes - reserved_per_node_bytes
        blocks = int(self.pool_bytes_per_node // block_bytes)
        self.lru = [NodeLru(blocks) for _ in self.nodes]
        self.hit_tokens = {"P": 0, "D": 0}  # hit KV served from the pool, by read side
        self.storage_tokens = {"P": 0, "D": 0}  # hit KV read from storage, by read side

    def owner(self, trajectory: str) -> int:
        """Index (into `nodes`) of the node whose DRAM holds the trajectory's blocks (stable across runs)."""
        return zlib.crc32(trajectory.encode()) % len(self.nodes)

    def lookup(self, req: Request) -> int:
        """Tokens of the request's hit KV found in the pool; the whole hit prefix then becomes the
        most recent (the missing blocks are read from storage into the pool). Called at dispatch."""
        cached = req.turn.cached_tokens
        if not cached:
            return 0
        lru = self.lru[self.owner(req.trajectory_id)]
        b = self.block_tokens
        hits = sum(min(hi * b, cached) - lo * b for lo, hi in lru.resident(req.trajectory_id, 0, -(-cached // b)))
        lru.touch(req.trajectory_id, 0, -(-cached // b))
        self.hit_tokens[req.read_side] += hits
        self.storage_tokens[req.read_side] += cached - hits
        return hits

    def store(self, req: Request) -> None:
        """The turn's new KV (prompt misses and generated tokens) joins the pool at write-back."""
        b = self.block_tokens
        end = req.turn.input_tokens + req.turn.output_tokens
        self.lru[self.owner(req.trajectory_id)].touch(req.trajectory_id, req.turn.cached_tokens // b, -(-end // b))

    def stores_anything(self) -> bool:
        return self.lru[0].capacity_blocks > 0

    def read_path(self, req: Request, reader: Node, reader_gpu: int) -> list[Link]:
        """Owner DRAM -> owner compute NIC -> reader's compute NIC -> reader's DRAM buffer (RDMA); a
        local copy when the reader owns the blocks. The owner's NIC is picked by request id."""
        owner = self.nodes[self.owner(req.trajectory_id)]
        if owner is reader:
            return [reader.dram]
        nic = req.id % len(owner.cnic_tx)
        return [owner.dram, owner.cnic_tx[nic], reader.cnic_rx[reader_gpu], reader.dram]

    def write_path(self, req: Request, writer: Node, writer_gpu: int) -> list[Link]:
        """The write-back's copy into the owner's DRAM: the reverse of `read_path`."""
        owner = self.nodes[self.owner(req.trajectory_id)]
        if owner is writer:
            return [writer.dram]
        nic = req.id % len(owner.cnic_rx)
        return [writer.dram, writer.cnic_tx[writer_gpu], owner.cnic_rx[nic], owner.dram]

    def summary(self, kv_bytes_per_token: float) -> dict:
        """The `dram_tier` entry of a run's summary."""
        hit = sum(self.hit_tokens.values())
        total = hit + sum(self.storage_tokens.values())
        return {
            "pool_bytes_per_node": float(self.pool_bytes_per_node),
            "hit_fraction": float(f"{hit / total:.9g}") if total else None,
            "hit_bytes": float(hit * kv_bytes_per_token),
            "storage_read_bytes": float((total - hit) * kv_bytes_per_token),
            "evicted_bytes": float(sum(lru.evicted_blocks for lru in self.lru) * self.block_bytes),
            "peak_used_fraction": float(f"{max(lru.peak_blocks for lru in self.lru) / max(self.lru[0].capacity_blocks, 1):.9g}"),
        }


def make_dram_tier(scenario, cluster: Cluster, block_bytes: float, free_io: bool) -> DramTier | None:
    """The scenario's DRAM tier, or None when it is off (the default) or I/O is free (the Oracle)."""
    cfg = scenario.hardware.dram_tier
    if not cfg.enabled or free_io:
        return None
    return DramTier(cluster, cfg.capacity_per_node, cfg.reserved_per_node, scenario.policy.block_tokens, block_bytes)


def read_hit_kv(sim, req: Request):
    """Process body (the tier's version of `Simulation.read_hit_kv`'s transfer): the blocks found in the
    pool come from their owner's DRAM by RDMA while the rest is read from storage, at once."""
    env, kv = sim.env, sim.model.kv_bytes_per_token
    node = req.read_node
    hits = req.tier_hit_tokens
    from_storage = req.turn.cached_tokens - hits
    transfers = []
    if hits:
        gpu = req.pe.gpu if req.read_side is ReadSide.PREFILL else req.de.gpu
        transfers.append(sim.move(sim.dram_tier.read_path(req, node, gpu), hits * kv, "dram_tier_read"))
    if from_storage:
        transfers.append(env.process(_storage_read(sim, req, from_storage * kv)))
    yield env.all_of(transfers)
    node.read_queue_tokens -= from_storage


def _storage_read(sim, req: Request, size_bytes: float):
    node = req.read_node
    tag = "storage_read_pe_side" if req.read_side is ReadSide.PREFILL else "storage_read_de_side"
    slots = node.read_slots
    yield slots.request()
    if sim.cluster.request_latency_s:  # held in the read slot, as in `Simulation._read_part`
        yield sim.env.timeout(sim.cluster.request_latency_s)
    yield sim.move(sim.cluster.storage_read_path(node), size_bytes, tag)
    slots.release()


def write_back_copy(sim, req: Request):
    """The copy of the turn's new KV (already in the pool's LRU: `DramTier.store`) from the decode
    node's DRAM to its owner's; an event, or None when the pool holds nothing."""
    tier = sim.dram_tier
    if not tier.stores_anything():
        return None
    size = (req.turn.new_tokens + req.turn.output_tokens) * sim.model.kv_bytes_per_token
    return sim.move(tier.write_path(req, req.de.node, req.de.gpu), size, "dram_tier_write")

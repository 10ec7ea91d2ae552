"""The cluster's hardware as links of the fluid network, plus DRAM buffers.

Per node: g GPUs, each paired with one compute NIC (two links: tx and rx, each at the NIC's line
rate), `s` storage NICs (a read link and a write link), host DRAM (one link at the host memory
bandwidth, shared by reads and writes) and a DRAM buffer pool of fixed size. The storage service is
modelled per client: a node reads at most

    min(s x line x efficiency,  queue_depth x block / (io_overhead + block / (s x line x efficiency)))

bytes/s, i.e. a fixed cost per Full-Block read with a bounded number in flight, and an optional
aggregate limit of the storage cluster. Compute and storage networks are separate links, so they
never share bandwidth.

Paths (docs/architecture.md#paper-data-paths): every byte into or out of a GPU crosses the GPU's own compute NIC. A local
H2D or D2H copy is an RDMA loopback, so it crosses that NIC's tx *and* rx link; this is what makes the
paper's bottleneck-free P/D bounds come out (see docs/modeling.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import simpy

from dpsim.kernel.resources.elements import Link
from dpsim.kernel.resources.net import Network
from dpsim.kernel.resources.slots import Slots
from dpsim.scenario.config import Scenario


class BufferPool:
    """A DRAM buffer of fixed size; allocations wait in FIFO order when it is full."""

    def __init__(self, env: simpy.Environment, name: str, capacity_bytes: float):
        self.env = env
        self.name = name
        self.capacity = capacity_bytes
        self.used = 0.0
        self.peak = 0.0
        self._waiting: deque[tuple[float, simpy.Event]] = deque()

    def allocate(self, size_bytes: float) -> simpy.Event:
        if size_bytes > self.capacity:
            raise ValueError(f"{self.name}: allocation of {size_bytes:.3g} B exceeds the buffer size {self.capacity:.3g} B")
        event = simpy.Event(self.env)
        self._waiting.append((size_bytes, event))
        self._grant()
        return event

    def release(self, size_bytes: float) -> None:
        self.used -= size_bytes
        if self.used < -1e-3:
            raise RuntimeError(f"{self.name}: released more than allocated")
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.capacity:
            size, event = self._waiting.popleft()
            self.used += size
            self.peak = max(self.peak, self.used)
            event.succeed()


@dataclass(eq=False)
class Node:
    """One server: its links and its DRAM buffer."""

    index: int
    role: str  # "prefill" or "decode"
    storage_read: Link
    storage_write: Link
    dram: Link
    cnic_tx: list[Link]
    cnic_rx: list[Link]
    buffer: BufferPool
    read_queue_tokens: int = 0  # tokens waiting for or being read from storage by this node
    read_slots: Slots | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.role[0].upper()}{self.index}"


class Cluster:
    """All nodes and the network that joins them; builds the paths of every transfer kind."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, block_bytes: float):
        hw, cl = scenario.hardware, scenario.cluster
        self.env = env
        self.net = Network(env, low_class_share=hw.network.low_class_share, bin_s=scenario.run.bin)
        self.storage_read_rate = storage_client_rate(
            hw.storage_nic.count * hw.storage_nic.bandwidth, hw.storage.read_efficiency,
            hw.storage.io_overhead, hw.storage.queue_depth, block_bytes)
        agg = hw.storage.aggregate_bandwidth
        self.storage_aggregate = [self.net.add_link("storage.aggregate", agg)] if agg else []
        self.prefill_nodes = [self._node(i, "prefill", scenario) for i in range(cl.prefill_nodes)]
        self.decode_nodes = [self._node(i, "decode", scenario) for i in range(cl.decode_nodes)]
        self.request_latency_s = hw.storage.request_latency
        self.nic_latency_s = hw.compute_nic.latency

    def _node(self, index: int, role: str, scenario: Scenario) -> Node:
        hw, net = scenario.hardware, self.net
        tag = f"{role[0].upper()}{index}"
        g = scenario.cluster.gpus_per_node
        node = Node(
            index=index,
            role=role,
            storage_read=net.add_link(f"{tag}.snic.rx", self.storage_read_rate),
            storage_write=net.add_link(f"{tag}.snic.tx", hw.storage_nic.count * hw.storage_nic.bandwidth),
            dram=net.add_link(f"{tag}.dram", hw.host.memory_bandwidth),
            cnic_tx=[net.add_link(f"{tag}.cnic{i}.tx", hw.compute_nic.bandwidth) for i in range(g)],
            cnic_rx=[net.add_link(f"{tag}.cnic{i}.rx", hw.compute_nic.bandwidth) for i in range(g)],
            buffer=BufferPool(self.env, f"{tag}.buffer", hw.host.dram_buffer),
            read_slots=Slots(self.env, hw.storage.inflight_requests),
        )
        return node

    @property
    def nodes(self) -> list[Node]:
        return self.prefill_nodes + self.decode_nodes

    # Paths of each transfer kind (docs/architecture.md#paper-data-paths).
    def storage_read_path(self, node: Node) -> list[Link]:
        return self.storage_aggregate + [node.storage_read, node.dram]

    def storage_write_path(self, node: Node) -> list[Link]:
        return [node.dram, node.storage_write] + self.storage_aggregate

    @staticmethod
    def loopback_path(node: Node, gpu: int) -> list[Link]:
        """H2D or D2H of GPU `gpu`: host DRAM and the GPU's compute NIC in both directions."""
        return [node.dram, node.cnic_tx[gpu], node.cnic_rx[gpu]]

    @staticmethod
    def gpu_to_remote_dram_path(src: Node, src_gpu: int, dst: Node, dst_gpu: int) -> list[Link]:
        """PE HBM -> compute network -> DE node's DRAM buffer (through the DE's paired NIC)."""
        return [src.cnic_tx[src_gpu], dst.cnic_rx[dst_gpu], dst.dram]

    @staticmethod
    def remote_dram_to_gpu_path(src: Node, src_gpu: int, dst: Node, dst_gpu: int) -> list[Link]:
        """DE DRAM buffer -> DE compute NIC -> compute network -> PE compute NIC -> PE HBM."""
        return [src.dram, src.cnic_tx[src_gpu], dst.cnic_rx[dst_gpu]]


def storage_client_rate(line_rate: float, efficiency: float, io_overhead_s: float, queue_depth: int,
                        block_bytes: float) -> float:
    """Bytes/s one node reads from storage with block-sized requests (see module docstring)."""
    streaming = line_rate * efficiency
    if io_overhead_s <= 0:
        return streaming
    per_request_s = io_overhead_s + block_bytes / streaming
    return min(streaming, queue_depth * block_bytes / per_request_s)

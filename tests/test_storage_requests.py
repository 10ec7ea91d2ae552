"""The storage service's per-request latency (docs/modeling.md#storage-service).

A node reads at most `inflight_requests` requests at once; a request holds its read slot from
submission to its last byte, so its fixed latency (metadata lookup, RPC) is inside the slot. With one
node, k slots, N equal requests of b bytes submitted together, latency L and client rate S, the
requests go in waves of k, and wave i ends at i * (L + k * b / S) (i = 1 .. N/k).
"""

from types import SimpleNamespace

import pytest

from dpsim import api
from dpsim.kernel import dram_tier
from dpsim.kernel.simulation import Simulation

QUICK = "scenarios/quickstart.yaml"


def _bare_simulation(latency_s: float, inflight: int) -> Simulation:
    scenario = api.load_scenario(QUICK, ["policy.system=basic", f"hardware.storage.request_latency={latency_s}s",
                                         f"hardware.storage.inflight_requests={inflight}"])
    return Simulation(scenario, trajectories=[])


def _finish_times(sim: Simulation, reads) -> list[float]:
    done: list[float] = []

    def one(read):
        yield from read
        done.append(sim.env.now)

    for read in reads:
        sim.env.process(one(read))
    sim.env.run()
    return sorted(done)


@pytest.mark.parametrize("path", ["storage", "dram_tier"])
@pytest.mark.parametrize("latency_s, inflight", [(0.02, 2), (0.005, 3), (0.0, 2)])
def test_each_wave_of_k_requests_takes_the_latency_plus_k_requests_at_the_client_rate(path, latency_s, inflight):
    sim = _bare_simulation(latency_s, inflight)
    node = sim.cluster.prefill_nodes[0]
    tokens, waves = 4096, 3
    size_bytes = tokens * sim.model.kv_bytes_per_token
    rate = sim.cluster.storage_read_rate  # the client's rate (the node's DRAM link is far faster)
    if path == "storage":
        reads = [sim._read_part(node, tokens, "t") for _ in range(waves * inflight)]
    else:  # the DRAM tier's storage part (docs/whatif.md#1-a-dram-cache-tier-in-front-of-storage)
        req = SimpleNamespace(read_node=node, read_side="P")
        reads = [dram_tier._storage_read(sim, req, size_bytes) for _ in range(waves * inflight)]
    finish = _finish_times(sim, reads)
    wave_s = latency_s + inflight * size_bytes / rate
    expected = [(i // inflight + 1) * wave_s for i in range(waves * inflight)]
    assert finish == pytest.approx(expected, rel=1e-6)


def test_the_latency_costs_throughput_only_when_it_holds_the_slot():
    """Were the latency a pure delay before the slot, N requests would end by L + N * b / S; held in
    the slot, every wave pays it."""
    latency_s, inflight, n = 0.05, 2, 8
    sim = _bare_simulation(latency_s, inflight)
    node = sim.cluster.prefill_nodes[0]
    tokens = 2048
    transfer_s = tokens * sim.model.kv_bytes_per_token / sim.cluster.storage_read_rate
    last = _finish_times(sim, [sim._read_part(node, tokens, "t") for _ in range(n)])[-1]
    assert last == pytest.approx(n // inflight * latency_s + n * transfer_s, rel=1e-6)
    assert last > latency_s + n * transfer_s + latency_s

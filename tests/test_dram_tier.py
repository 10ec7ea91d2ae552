"""The DRAM cache tier (dpsim.kernel.dram_tier, docs/whatif.md#1-a-dram-cache-tier-in-front-of-storage):
LRU by block, its closed-form behaviour, and the tier inside small simulations."""

import random
from collections import OrderedDict

import pytest

from dpsim import api
from dpsim.kernel.dram_tier import NodeLru
from dpsim.scenario.config import ScenarioError

QUICK = "scenarios/quickstart.yaml"
SMALL = ["workload.mal=64K", "workload.agents=16", "workload.max_turns=12", "hardware.storage_nic.bandwidth=25Gbps"]


class BlockLru:
    """The reference: a per-block LRU list, one entry per block."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.blocks: OrderedDict = OrderedDict()

    def touch(self, trajectory, lo, hi):
        for b in range(lo, hi):
            self.blocks.pop((trajectory, b), None)
            self.blocks[(trajectory, b)] = True
            while len(self.blocks) > self.capacity:
                self.blocks.popitem(last=False)

    def resident(self, trajectory, lo, hi):
        return {b for (t, b) in self.blocks if t == trajectory and lo <= b < hi}


@pytest.mark.parametrize("capacity", [0, 1, 7, 40, 200])
def test_run_lru_equals_a_per_block_lru(capacity):
    rng = random.Random(capacity)
    fast, slow = NodeLru(capacity), BlockLru(capacity)
    for _ in range(400):
        trajectory = f"t{rng.randrange(6)}"
        lo = rng.randrange(30)
        hi = lo + rng.randrange(1, 25)
        query = (rng.randrange(40), rng.randrange(40, 60))
        got = {b for a, z in fast.resident(trajectory, *query) for b in range(a, z)}
        assert got == slow.resident(trajectory, *query)
        fast.touch(trajectory, lo, hi)
        slow.touch(trajectory, lo, hi)
        assert fast.used_blocks == len(slow.blocks) <= capacity
    everything = {(t, b) for t in (f"t{i}" for i in range(6)) for a, z in fast.resident(t, 0, 10**6) for b in range(a, z)}
    assert everything == set(slow.blocks)


@pytest.mark.parametrize("excess", [0, 1, 3, 9, 10, 25])
def test_cyclic_access_loses_the_excess_per_access(excess):
    """LRU's closed form for agents that take turns in a cycle, each reading its B blocks in one
    request: a pool short of the working set by e blocks (0 <= e <= B) loses exactly e blocks per
    access once warm (each request's misses evict the next agent's oldest e blocks), so the hit
    fraction after the first round is 1 - e/B, and 0 from e = B on: a cliff one agent wide."""
    agents, blocks, rounds = 8, 10, 5
    lru, found = NodeLru(agents * blocks - excess), 0
    for _round in range(rounds):
        for a in range(agents):
            found += sum(z - lo for lo, z in lru.resident(f"a{a}", 0, blocks))
            lru.touch(f"a{a}", 0, blocks)
    expected = (rounds - 1) / rounds * max(0.0, 1 - excess / blocks)
    assert found / (rounds * agents * blocks) == pytest.approx(expected)


def _run(*sets):
    return api.run(api.load_scenario(QUICK, SMALL + list(sets)), progress=False)


def test_pool_that_holds_everything_serves_every_hit_from_dram():
    result = _run("hardware.dram_tier.enabled=true")
    tier = result.summary["dram_tier"]
    kv = (656 + 68) * 30  # DS 27B bytes per token: MLA KV + indexer key cache
    hit_bytes = float(result.turns.cached_tokens.sum()) * kv
    assert result.invariant_failures == []
    assert tier["hit_fraction"] == 1.0 and tier["evicted_bytes"] == 0.0
    assert tier["hit_bytes"] == pytest.approx(hit_bytes)
    assert result.summary["bytes_by_path"]["dram_tier_read"] == pytest.approx(hit_bytes)
    assert not any(k.startswith("storage_read") for k in result.summary["bytes_by_path"])


def test_empty_pool_gives_the_results_of_no_tier():
    """All DRAM reserved for other state: every hit is read from storage, exactly as without a tier."""
    off = _run("policy.system=dualpath").summary
    empty = _run("policy.system=dualpath", "hardware.dram_tier.enabled=true",
                 "hardware.dram_tier.capacity_per_node=100GB", "hardware.dram_tier.reserved_per_node=100GB").summary
    assert empty.pop("dram_tier")["hit_fraction"] == 0.0
    assert empty == off


def test_a_pool_smaller_than_the_working_set_evicts_and_reads_storage_again():
    result = _run("hardware.dram_tier.enabled=true", "hardware.dram_tier.capacity_per_node=500MB")
    tier = result.summary["dram_tier"]
    assert result.invariant_failures == []
    assert 0.0 < tier["hit_fraction"] < 1.0 and tier["evicted_bytes"] > 0 and tier["peak_used_fraction"] == 1.0
    assert tier["storage_read_bytes"] == pytest.approx(sum(v for k, v in result.summary["bytes_by_path"].items()
                                                           if k.startswith("storage_read")))


@pytest.mark.parametrize("setting, message", [
    ("hardware.dram_tier.reserved_per_node=2TB", "hardware.dram_tier.reserved_per_node = '2TB': reserves 2000 GB"),
    ("hardware.dram_tier.capacity_per_node=1500", "a bare number is ambiguous"),
    ("hardware.dram_tier.eviction=fifo", "hardware.dram_tier.eviction = 'fifo'"),
    ("hardware.dram_tier.enabled=maybe", "hardware.dram_tier.enabled = 'maybe'"),
])
def test_bad_settings_are_located_errors(setting, message):
    with pytest.raises(ScenarioError, match="quickstart.yaml|--set") as info:
        api.load_scenario(QUICK, [setting])
    assert message in str(info.value)
    assert "\n" not in str(info.value)

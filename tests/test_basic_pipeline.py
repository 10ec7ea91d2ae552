"""Basic's whole-prompt pipeline (docs/modeling.md#basic-pipeline): when hit KV is read from storage.

With whole_prompt_kv_read=at_pass (the default of whole-prompt prefill, i.e. Basic) an EP group
reads its pass's hit KV only when the pass forms and computes only once every member's KV is in HBM,
so the group's storage reads and its compute alternate. Double-buffered (=next_pass), a pass's reads
overlap the compute of the pass before it, and no earlier one. Read ahead (=ahead, and always with
layerwise prefill), reads overlap the compute of earlier passes.
"""

import numpy as np
import pytest

from dpsim import api
from dpsim.scenario.config import WholePromptKvRead
from dpsim.scenario.models import get_model
from dpsim.workload.trajectory import Trajectory, Turn

QUICK = "scenarios/quickstart.yaml"  # DS 27B 1P1D: one prefill EP group of 8 GPUs
# Storage-bound enough that reads and compute both take visible time.
SMALL = ["workload.mal=64K", "workload.agents=16", "workload.max_turns=8", "policy.system=basic",
         "hardware.storage_nic.bandwidth=100Gbps"]


def _run(*sets):
    result = api.run(api.load_scenario(QUICK, SMALL + list(sets)), progress=False)
    assert result.invariant_failures == []
    return result


def _passes_overlapping_reads(turns) -> list[int]:
    """Per read, the number of other passes whose compute overlaps it in time (one prefill group
    here, so passes follow one another and any overlap means storage and GPU worked at once). A pass
    is told by its compute interval; turns prefilled in one chunk only, so that the interval is one pass."""
    t = turns[(turns.cached_tokens > 0) & (turns.chunks == 1)]
    reads = t[["t_read_start", "t_read_end"]].to_numpy(float)
    compute = t[["t_prefill_start", "t_first_token"]].to_numpy(float)
    counts = []
    for (r0, r1), own in zip(reads, compute):
        passes = {(round(c0, 9), round(c1, 9)) for c0, c1 in compute
                  if c0 < r1 - 1e-9 and c1 > r0 + 1e-9 and (c0, c1) != tuple(own)}
        counts.append(len(passes))
    return counts


def _reads_overlapping_compute(turns) -> int:
    return sum(_passes_overlapping_reads(turns))


def test_whole_prompt_prefill_reads_at_the_pass_by_default_and_layerwise_always_ahead():
    def kv_read(*sets):
        return api.load_scenario(QUICK, list(sets)).effective_policy().kv_read

    assert kv_read("policy.system=basic") is WholePromptKvRead.AT_PASS
    assert kv_read("policy.system=basic", "policy.whole_prompt_kv_read=ahead") is WholePromptKvRead.AHEAD
    assert kv_read("policy.system=basic", "policy.whole_prompt_kv_read=next_pass") is WholePromptKvRead.NEXT_PASS
    # The ablation's +layerwise rung, DualPath and the Oracle read ahead whatever the setting.
    assert kv_read("policy.system=basic", "policy.layerwise=true",
                   "policy.whole_prompt_kv_read=next_pass") is WholePromptKvRead.AHEAD
    assert kv_read("policy.system=dualpath", "policy.whole_prompt_kv_read=at_pass") is WholePromptKvRead.AHEAD
    assert kv_read("policy.system=oracle") is WholePromptKvRead.AHEAD


def test_an_unknown_read_mode_is_a_located_error():
    with pytest.raises(api.ScenarioError, match="whole_prompt_kv_read"):
        api.load_scenario(QUICK, ["policy.whole_prompt_kv_read=sometimes"])


def test_reads_at_the_pass_never_overlap_the_groups_compute_but_read_ahead_does():
    at_pass = _run("policy.whole_prompt_kv_read=at_pass")
    ahead = _run("policy.whole_prompt_kv_read=ahead")
    assert _reads_overlapping_compute(at_pass.turns) == 0
    assert _reads_overlapping_compute(ahead.turns) > 0
    # Serialising reads and compute can only lengthen the job.
    assert at_pass.summary["jct_s"] > ahead.summary["jct_s"]


def test_reads_one_pass_ahead_overlap_the_pass_before_and_no_other():
    next_pass = _run("policy.whole_prompt_kv_read=next_pass")
    overlaps = _passes_overlapping_reads(next_pass.turns)
    assert max(overlaps) == 1  # a read overlaps at most the pass computing when it started
    assert sum(overlaps) > 0
    hit = next_pass.turns[next_pass.turns.cached_tokens > 0]
    assert (hit.t_prefill_start >= hit.t_read_end - 1e-12).all()  # whole-prompt: all KV in before compute
    assert next_pass.summary["jct_s"] < _run("policy.whole_prompt_kv_read=at_pass").summary["jct_s"]


def _two_passes(kv_read: str, cached_b: int):
    """Two requests on one EP group (DS 27B 1P1D): A alone at t=0 forms the first pass; B, placed 1 ms
    later, forms the second. Each prefills 2,000 new tokens, within one attention quota."""
    sc = api.load_scenario(QUICK, ["policy.system=basic", f"policy.whole_prompt_kv_read={kv_read}",
                                   "workload.mode=online"])
    trajectories = [Trajectory("a", [Turn(32_000, 30_000, 4)], arrival_s=0.0),
                    Trajectory("b", [Turn(cached_b + 2_000, cached_b, 4)], arrival_s=0.001)]
    result = api.run(sc, trajectories, progress=False)
    assert result.invariant_failures == []
    t = result.turns.set_index("trajectory")
    assert (t.chunks == 1).all()
    return t.loc["a"], t.loc["b"]


@pytest.mark.parametrize("cached_b", [10_000, 150_000], ids=["read-hidden", "read-longer-than-compute"])
def test_two_passes_read_then_compute_or_read_during_the_pass_before(cached_b):
    """at_pass: read1 + load1 + comp1 + read2 + load2 + comp2; next_pass: B's read starts when A's
    compute does, so read1 + load1 + max(comp1, read2) + load2 + comp2 (load: the H2D copy)."""
    a, b = _two_passes("at_pass", cached_b)
    read = {r: x.t_read_end - x.t_read_start for r, x in (("a", a), ("b", b))}
    load = {r: x.t_prefill_start - x.t_read_end for r, x in (("a", a), ("b", b))}
    comp = {r: x.t_first_token - x.t_prefill_start for r, x in (("a", a), ("b", b))}
    # Reads alone on the storage NIC: hit bytes at the client's rate (400 Gbps x 0.86, no request latency).
    kv = get_model("ds27b").kv_bytes_per_token
    assert read["b"] == pytest.approx(cached_b * kv / (400e9 / 8 * 0.86), rel=1e-6)
    assert a.t_read_start == 0.0
    assert b.t_first_token == pytest.approx(sum(read.values()) + sum(load.values()) + sum(comp.values()), abs=1e-9)
    assert (read["b"] < comp["a"]) == (cached_b == 10_000)  # the two cases are what their names say

    a2, b2 = _two_passes("next_pass", cached_b)
    assert a2.t_first_token == pytest.approx(a.t_first_token, abs=1e-9)  # the first pass is unchanged
    assert b2.t_read_start == pytest.approx(a.t_prefill_start, abs=1e-9)  # read while A computes
    assert b2.t_first_token == pytest.approx(
        read["a"] + load["a"] + max(comp["a"], read["b"]) + load["b"] + comp["b"], abs=1e-6)


def test_pass_reads_happen_inside_the_pass_in_lifecycle_order():
    t = _run("policy.whole_prompt_kv_read=at_pass").turns
    hit = t[t.cached_tokens > 0]
    assert (hit.t_read_start >= hit.t_dispatch - 1e-12).all()
    assert (hit.t_prefill_start >= hit.t_read_end - 1e-12).all()
    # Every byte of hit KV still crosses the prefill node's storage NIC once (conservation is an
    # invariant; here: the PE-side read tag carries exactly the hit KV).


def test_ttft_parts_add_up_and_name_the_paper_ttst():
    result = _run("policy.whole_prompt_kv_read=at_pass")
    t = result.turns.dropna(subset=["t_first_token"])
    parts = t.ttft_queue_s + t.ttft_alloc_s + t.ttft_read_s + t.ttft_prefill_s
    assert np.allclose(parts, t.ttft_s, rtol=0, atol=1e-9)
    assert (t[["ttft_alloc_s", "ttft_read_s", "ttft_prefill_s"]] >= -1e-12).all().all()
    assert (t.ttft_queue_s >= -1e-9).all()
    breakdown = result.summary["ttft_breakdown"]
    assert sum(breakdown[f"{p}_share"] for p in ("queue", "alloc", "read", "prefill")) == pytest.approx(1.0)
    # The paper's TTST is the gap between the first and the second token; ttst_s is from arrival.
    gap = t.second_token_gap_s.dropna()
    assert (gap > 0).all()
    assert np.allclose(t.ttst_s - t.ttft_s, t.second_token_gap_s, equal_nan=True)


def test_the_next_pass_is_the_one_the_engines_rule_forms_and_no_later_one():
    """One engine (DS 27B on one GPU) with HBM for 1.0 GB of KV: A (0.63 GB) forms pass 1; B and C
    (0.24 GB each) are placed during it, but only B fits beside A, so pass 2 is B and pass 3 is C.
    C's KV is read during pass 2 (once A's hand-off frees the HBM that admits C), not during pass 1."""
    sets = ["policy.system=basic", "policy.whole_prompt_kv_read=next_pass", "workload.mode=online",
            "cluster.gpus_per_node=1", "cluster.decode_nodes=3", "hardware.gpu.hbm_reserved=52GB"]
    trajectories = [Trajectory("a", [Turn(32_000, 30_000, 4)], arrival_s=0.0),
                    Trajectory("b", [Turn(12_000, 10_000, 4)], arrival_s=0.001),
                    Trajectory("c", [Turn(12_000, 10_000, 4)], arrival_s=0.002)]
    result = api.run(api.load_scenario(QUICK, sets), trajectories, progress=False)
    assert result.invariant_failures == []
    a, b, c = (result.turns.set_index("trajectory").loc[x] for x in "abc")
    assert a.t_first_token <= b.t_prefill_start and b.t_first_token <= c.t_prefill_start  # three passes
    assert b.t_read_start == pytest.approx(a.t_prefill_start, abs=1e-9)
    assert b.t_prefill_start < c.t_read_start < b.t_first_token

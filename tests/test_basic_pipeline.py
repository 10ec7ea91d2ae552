"""Basic's whole-prompt pipeline (docs/modeling.md#basic-pipeline): when hit KV is read from storage.

With whole_prompt_kv_read=at_pass (the default of whole-prompt prefill, i.e. Basic) an EP group
reads its pass's hit KV only when the pass forms and computes only once every member's KV is in HBM,
so the group's storage reads and its compute alternate. Read ahead (=ahead, and always with layerwise
prefill), reads overlap the compute of earlier passes.
"""

import numpy as np
import pytest

from dpsim import api

QUICK = "scenarios/quickstart.yaml"  # DS 27B 1P1D: one prefill EP group of 8 GPUs
# Storage-bound enough that reads and compute both take visible time.
SMALL = ["workload.mal=64K", "workload.agents=16", "workload.max_turns=8", "policy.system=basic",
         "hardware.storage_nic.bandwidth=100Gbps"]


def _run(*sets):
    result = api.run(api.load_scenario(QUICK, SMALL + list(sets)), progress=False)
    assert result.invariant_failures == []
    return result


def _reads_overlapping_compute(turns) -> int:
    """Number of (read, compute) interval pairs of different turns that overlap in time (one prefill
    group here, so any overlap means storage and GPU worked at once)."""
    t = turns[(turns.cached_tokens > 0) & (turns.chunks == 1)]
    reads = t[["t_read_start", "t_read_end"]].to_numpy(float)
    compute = t[["t_prefill_start", "t_first_token"]].to_numpy(float)
    ids = t.index.to_numpy()
    count = 0
    for i, (r0, r1) in enumerate(reads):
        overlap = (compute[:, 0] < r1 - 1e-9) & (compute[:, 1] > r0 + 1e-9) & (ids != ids[i])
        count += int(overlap.sum())
    return count


def test_whole_prompt_prefill_reads_at_the_pass_by_default_and_layerwise_always_ahead():
    def at_pass(*sets):
        return api.load_scenario(QUICK, list(sets)).effective_policy().kv_read_at_pass

    assert at_pass("policy.system=basic")
    assert not at_pass("policy.system=basic", "policy.whole_prompt_kv_read=ahead")
    assert not at_pass("policy.system=basic", "policy.layerwise=true")  # the ablation's +layerwise rung
    assert not at_pass("policy.system=dualpath", "policy.whole_prompt_kv_read=at_pass")
    assert not at_pass("policy.system=oracle")


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

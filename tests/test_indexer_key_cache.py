"""The DSA indexer key cache (docs/modeling.md#indexer-key-cache): stored, read, moved and held with the
KV unless `model.indexer_keys_cached` is false; the cache-compute ratio counts the attention KV only."""

import pytest

from dpsim import api
from dpsim.scenario.models import get_model

QUICK = "scenarios/quickstart.yaml"  # DS 27B 1P1D
SMALL = ["workload.agents=8", "workload.max_turns=4", "policy.system=basic"]


def test_cache_bytes_per_token_add_the_indexer_key_for_dsa_models_only():
    # DeepSeek-V3.2: 61 layers x (656 B MLA KV + 132 B FP8 indexer key and scale); DS 27B: 30 x (656 + 68).
    assert api.load_scenario("scenarios/paper/ds660b-2p4d.yaml").model.spec().kv_bytes_per_token == 61 * (656 + 132)
    assert api.load_scenario(QUICK).model.spec().kv_bytes_per_token == 30 * (656 + 68)
    off = api.load_scenario(QUICK, ["model.indexer_keys_cached=false"]).model.spec()
    assert off.kv_bytes_per_token == 30 * 656
    # Qwen 32B has no indexer: 64 layers x 8 KV heads x 128 x K and V x FP16, either way.
    for flag in ("true", "false"):
        qwen = api.load_scenario("scenarios/paper/qwen32b-1p2d.yaml", [f"model.indexer_keys_cached={flag}"])
        assert qwen.model.spec().kv_bytes_per_token == 64 * 8 * 128 * 2 * 2


def test_cache_compute_ratio_counts_the_attention_kv_only():
    spec = get_model("ds660b")
    off = api.load_scenario("scenarios/paper/ds660b-2p4d.yaml", ["model.indexer_keys_cached=false"]).model.spec()
    assert spec.cache_compute_ratio_gb_per_pflop(32768, 429) == off.cache_compute_ratio_gb_per_pflop(32768, 429)


def test_a_run_reads_and_moves_the_indexer_keys_with_the_kv():
    """Every storage read and every P->D hand-off scales with the cache bytes per token: the same run
    moves (656 + 68) / 656 times the bytes on each path when the indexer keys are cached."""
    on = api.run(api.load_scenario(QUICK, SMALL), progress=False)
    off = api.run(api.load_scenario(QUICK, SMALL + ["model.indexer_keys_cached=false"]), progress=False)
    assert on.invariant_failures == [] and off.invariant_failures == []
    hit_tokens = float(on.turns.cached_tokens.sum())
    assert hit_tokens == float(off.turns.cached_tokens.sum()) > 0
    for result, per_token in ((on, 30 * (656 + 68)), (off, 30 * 656)):
        moved = result.summary["bytes_by_path"]
        assert moved["storage_read_pe_side"] == pytest.approx(hit_tokens * per_token)  # Basic reads on the PE side
        assert moved["kv_pe_to_de"] == pytest.approx(float(result.turns.input_tokens.sum()) * per_token)
    assert on.summary["jct_s"] > off.summary["jct_s"]  # more bytes through the same storage NIC

"""The prefill batcher's chunk size (`GpuModel.attention_chunk`): the most new tokens whose attention
fits a time budget. Its closed-form first guess (`ModelSpec.prefill_attention_tokens_within`) must
never change the answer, which is defined by a bisection on `attention_seconds`."""

import random

import pytest

from dpsim.kernel.resources.gpu import GpuModel
from dpsim.scenario.config import GpuConfig
from dpsim.scenario.models import DEEPSEEK_V3, DS27B, DS660B, QWEN32B, ModelSpec


def _bisection(gpu: GpuModel, cached: int, todo: int, budget_s: float) -> int:
    """The reference: the batcher's rule before the guess (largest n in [1, todo] that fits)."""
    if budget_s <= 0 or gpu.attention_seconds(cached, 1) > budget_s:
        return 0
    lo, hi = 1, todo
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if gpu.attention_seconds(cached, mid) <= budget_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


@pytest.mark.parametrize("model", [DS660B, DS27B, QWEN32B, DEEPSEEK_V3], ids=lambda m: m.name)
def test_chunk_equals_bisection(model: ModelSpec):
    gpu = GpuModel(model, GpuConfig(), group_gpus=8, weights_bytes_per_gpu=1e9)
    rng = random.Random(7)
    guessed_right = 0
    for _ in range(3000):
        cached = rng.choice([0, 1, rng.randrange(0, 2048), rng.randrange(0, 200_000)])
        todo = rng.randrange(1, 70_000)
        full_s = gpu.attention_seconds(cached, todo)
        budget_s = full_s * rng.choice([rng.random(), rng.random() ** 4, 1.0, 1.5])
        expected = _bisection(gpu, cached, todo, budget_s)
        assert gpu.attention_chunk(cached, todo, budget_s) == expected, (cached, todo, budget_s)
        if 1 < expected < todo:
            n = model.prefill_attention_tokens_within(cached, budget_s * gpu._attn_rate)
            guessed_right += int(n) == expected
    assert guessed_right > 0  # the guess is used (its accuracy is a speed matter, not a result)


def test_inverse_inverts_the_closed_form_on_both_sides_of_top_k():
    model = DS660B  # DSA: top-k 2048 plus the indexer
    assert model.sparse_top_k is not None
    for cached in (0, 100, model.sparse_top_k - 10, model.sparse_top_k, 50_000):
        for new in (1, 7, 500, 5000, 40_000):
            flops = model.prefill_attention_flops(cached, new)
            assert model.prefill_attention_tokens_within(cached, flops) == pytest.approx(new, rel=1e-9, abs=1e-6)


def test_free_attention_fits_everything():
    free = ModelSpec(name="free", layers=2, kv_bytes_per_token_layer=1.0, dense_flops_per_token=1.0,
                     expert_flops_per_token=0.0, attn_flops_per_qk_layer=0.0, weights_bytes=1.0, moe=False)
    gpu = GpuModel(free, GpuConfig(), group_gpus=1, weights_bytes_per_gpu=1.0)
    assert gpu.attention_chunk(100, 500, 1e-3) == 500
    assert gpu.attention_chunk(100, 500, 0.0) == 0

"""GPU time: roofline estimates of a prefill forward pass and a decode step.

What this model is
  A forward pass of an EP group costs, per layer, the slowest member's attention and data-parallel
  dense work plus the expert (MoE) work, which is spread over the whole group (every GPU waits at
  each layer's all-to-all). Each term is max(FLOPs / (peak x efficiency), bytes / (HBM bandwidth x
  efficiency)). Efficiencies come from public kernel measurements (cited in the scenario presets),
  not from DualPath's results. A fixed per-pass overhead stands for launch and scheduling time.

What it is not
  No kernel-level tiling, no communication/compute overlap detail (the all-to-all is a high-class
  flow on the NICs that can only stretch a pass, never shorten it), no pipeline bubbles.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpsim.scenario.config import GpuConfig
from dpsim.scenario.models import ModelSpec


@dataclass(frozen=True)
class PassTime:
    """A forward pass: total seconds and the per-GPU attention seconds (for balance metrics)."""

    seconds: float
    attention_s_by_gpu: tuple[float, ...]


class GpuModel:
    """Compute-time predictions for one model on one GPU type."""

    def __init__(self, model: ModelSpec, gpu: GpuConfig, group_gpus: int, weights_bytes_per_gpu: float):
        self.model = model
        self.gpu = gpu
        self.group_gpus = group_gpus
        self.weights_bytes_per_gpu = weights_bytes_per_gpu
        self._gemm_rate = gpu.peak_flops_fp8 * gpu.gemm_efficiency
        self._attn_rate = gpu.peak_flops_bf16 * gpu.attention_efficiency
        self._hbm_rate = gpu.hbm_bandwidth * gpu.hbm_efficiency
        self._weights_s = weights_bytes_per_gpu / self._hbm_rate
        self._attention_flops = model.prefill_attention_flops_of

    def attention_seconds(self, cached: int, new: int) -> float:
        """Predicted attention time of prefilling `new` tokens after `cached` (the batching quota's unit)."""
        return self._attention_flops(cached, new) / self._attn_rate

    def attention_chunk(self, cached: int, todo: int, budget_s: float) -> int:
        """The most new tokens, at most `todo`, whose attention after `cached` fits `budget_s` (0 if not
        even one): a bisection on `attention_seconds`, which is monotone in the new tokens. The
        closed-form inverse (`ModelSpec.prefill_attention_tokens_within`) gives a first guess that,
        when right, narrows it to two evaluations; the bisection's tests decide, so the answer is
        the same with or without the guess."""
        if budget_s <= 0 or self.attention_seconds(cached, 1) > budget_s:
            return 0
        lo, hi = 1, todo  # the answer is in [lo, hi], and attention_seconds(cached, lo) <= budget_s
        estimate = self.model.prefill_attention_tokens_within(cached, budget_s * self._attn_rate)
        guess = int(estimate) if estimate < hi else hi - 1
        if guess > lo:
            if self.attention_seconds(cached, guess) <= budget_s:
                lo = guess
                if self.attention_seconds(cached, guess + 1) > budget_s:
                    return guess
            else:
                hi = guess - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.attention_seconds(cached, mid) <= budget_s:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def prefill_pass(self, work_by_gpu: list[list[tuple[int, int]]]) -> PassTime:
        """Seconds of one forward pass; work_by_gpu[i] = [(cached, new), ...] on GPU i of the group."""
        model = self.model
        attention, per_gpu, expert_tokens = [], [], 0
        for work in work_by_gpu:
            attn_s = sum(self.attention_seconds(c, n) for c, n in work)
            new = sum(n for _, n in work)
            expert_tokens += new
            attention.append(attn_s)
            per_gpu.append(attn_s + new * model.dense_flops_per_token / self._gemm_rate)
        expert_s = expert_tokens * model.expert_flops_per_token / self.group_gpus / self._gemm_rate
        compute_s = max(per_gpu) + expert_s
        # A pass reads every weight at least once: the memory floor of small batches.
        seconds = max(compute_s, self._weights_s) + self.gpu.prefill_pass_overhead
        return PassTime(seconds, tuple(attention))

    def decode_step(self, kv_read_bytes_by_gpu: list[float], tokens_by_gpu: list[int],
                    attn_flops_by_gpu: list[float]) -> float:
        """Seconds of one decode step of the group (every GPU decodes one token per request)."""
        slowest = 0.0
        for kv_bytes, tokens, attn_flops in zip(kv_read_bytes_by_gpu, tokens_by_gpu, attn_flops_by_gpu):
            gpu_s = self.decode_gpu_seconds(kv_bytes, tokens, attn_flops)
            if gpu_s > slowest:
                slowest = gpu_s
        return self.decode_step_of(slowest, sum(tokens_by_gpu))

    def decode_gpu_seconds(self, kv_read_bytes: float, tokens: int, attn_flops: float) -> float:
        """One GPU's part of a decode step: max(memory, compute) seconds of its own batch (its
        attention KV and weights read from HBM; its attention and dense FLOPs)."""
        memory_s = (kv_read_bytes + self.weights_bytes_per_gpu) / self._hbm_rate
        compute_s = attn_flops / self._attn_rate + tokens * self.model.dense_flops_per_token / self._gemm_rate
        return memory_s if memory_s >= compute_s else compute_s

    def decode_step_of(self, slowest_gpu_s: float, group_tokens: int) -> float:
        """The group's step from its slowest GPU's `decode_gpu_seconds` and its tokens per step (the
        routed experts' work is spread over the whole group)."""
        expert_s = group_tokens * self.model.expert_flops_per_token / self.group_gpus / self._gemm_rate
        return slowest_gpu_s + expert_s + self.gpu.decode_step_overhead

    def prefill_tokens_per_s(self, cached: int, new: int) -> float:
        """Prompt tokens (cached + new) one GPU prefills per second for requests of this shape,
        in a batch that fills the attention quota; used for the scheduler's beta threshold."""
        per_request = self.attention_seconds(cached, new) + new * (
            self.model.dense_flops_per_token + self.model.expert_flops_per_token) / self._gemm_rate
        return (cached + new) / per_request

"""LLM specifications: what a model costs in KV bytes, FLOPs and weights.

A model here is not a network graph: it is the handful of numbers the cluster-level argument rests
on. Per token and layer: KV bytes stored; per new token: dense (data-parallel) FLOPs and routed-expert
(expert-parallel) FLOPs; per (query, key) pair: attention FLOPs, with DeepSeek sparse attention's
top-k limit and its indexer, which scores every key. Sources are given beside each number;
"[assumed]" marks what no public source states.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property, lru_cache, partial


@dataclass(frozen=True)
class ModelSpec:
    """The cost-relevant parameters of an LLM."""

    name: str
    layers: int
    kv_bytes_per_token_layer: float  # bytes of KV cache per token per layer
    dense_flops_per_token: float  # per new token: attention projections, dense FFN, shared experts, head
    expert_flops_per_token: float  # per new token: routed experts (shared across an EP group); 0 if dense
    attn_flops_per_qk_layer: float  # per (query, attended key) pair per layer: QK^T and PV
    weights_bytes: float  # all parameters as stored
    moe: bool
    sparse_top_k: int | None = None  # keys attended per query (DeepSeek sparse attention); None = dense
    indexer_flops_per_qk_layer: float = 0.0  # lightning indexer: every (query, key) pair per layer
    # DeepSeek sparse attention's indexer key cache: the lightning indexer scores every earlier token by its
    # indexer key, so a cached prefix needs its indexer keys as much as its KV (docs/modeling.md#indexer-key-cache).
    indexer_key_bytes_per_token_layer: float = 0.0
    # Whether the indexer keys are stored, read, moved and held in HBM with the KV (a token's cache is then
    # KV + indexer key); False: only the attention KV is (the testbed profiles fitted before the twelfth session).
    indexer_keys_cached: bool = True
    a2a_bytes_per_token_layer_node: float = 0.0  # EP dispatch + combine bytes per token, layer, remote node
    moe_layers: int = 0
    experts_per_token: int = 0
    node_limit: int = 4  # most nodes a token's experts may span (DeepSeek-V3 node-limited routing)
    source: str = ""

    @cached_property  # read per transfer and per request; computed once (kept outside the fields)
    def kv_bytes_per_token(self) -> float:
        """Cache bytes per token over all layers, as storage holds them and every path moves them: the
        attention KV and, for DSA models with `indexer_keys_cached`, the indexer key cache."""
        if self.indexer_keys_cached:
            return (self.kv_bytes_per_token_layer + self.indexer_key_bytes_per_token_layer) * self.layers
        return self.kv_bytes_per_token_layer * self.layers

    def attended_keys(self, context: int) -> int:
        return context if self.sparse_top_k is None else min(context, self.sparse_top_k)

    def prefill_attention_flops(self, cached: int, new: int) -> float:
        """Attention + indexer FLOPs of `new` tokens after `cached` (causal), all layers."""
        return self.prefill_attention_flops_of(cached, new)

    @cached_property
    def prefill_attention_flops_of(self) -> Callable[[int, int], float]:
        """`prefill_attention_flops` as a function of (cached, new), for callers in the simulator's
        inner loops (per request per prefill pass, and per step of a chunk's bisection): the model's
        four numbers bound once. Memoised on those numbers, not on the model: hashing the frozen
        dataclass hashes all its fields."""
        return partial(_prefill_attention_flops, self.layers, self.sparse_top_k, self.attn_flops_per_qk_layer,
                       self.indexer_flops_per_qk_layer)

    def prefill_attention_tokens_within(self, cached: int, flops: float) -> float:
        """The real `new` at which `prefill_attention_flops(cached, new)` reaches `flops`: the inverse
        of its closed form, a quadratic in `new` on each side of the top-k limit. An estimate (the
        solution of a quadratic, not the integer sum): callers check their answer with the forward
        function (`GpuModel.attention_chunk`)."""
        per_layer = flops / self.layers
        a, i, c, k = self.attn_flops_per_qk_layer, self.indexer_flops_per_qk_layer, cached, self.sparse_top_k
        if a + i <= 0:
            return math.inf  # attention costs nothing: any number of tokens fits
        # Dense side (every query attends every key): (a + i) (2c + 1 + n) n / 2 = per_layer.
        n = _positive_root((a + i) / 2, (a + i) * (2 * c + 1) / 2, -per_layer)
        if k is None or c + n <= k:
            return n
        # Past the limit: attended = k n + (k - c)(c + 1 - k) / 2 when c < k (the queries below the limit
        # attend fewer), k n when c + 1 >= k; the indexer still scores every key.
        offset = (k - c) * (c + 1 - k) / 2 if c < k else 0.0
        return _positive_root(i / 2, a * k + i * (2 * c + 1) / 2, a * offset - per_layer)

    def prefill_flops(self, cached: int, new: int) -> tuple[float, float, float]:
        """(attention, dense, expert) FLOPs of prefilling `new` tokens after `cached` ones."""
        return (self.prefill_attention_flops(cached, new), new * self.dense_flops_per_token,
                new * self.expert_flops_per_token)

    def decode_kv_read_bytes(self, context: int) -> float:
        """HBM bytes of KV read to generate one token with `context` tokens before it."""
        keys = self.attended_keys(context)
        return self.layers * (keys * self.kv_bytes_per_token_layer + context * self.indexer_key_bytes_per_token_layer)

    def decode_attention_flops(self, context: int) -> float:
        return self.layers * (self.attended_keys(context) * self.attn_flops_per_qk_layer
                              + context * self.indexer_flops_per_qk_layer)

    def remote_nodes_per_token(self, ep_nodes: int) -> float:
        """Expected number of other nodes a token's routed experts touch in an EP group of `ep_nodes`.

        Experts are assumed uniformly spread and chosen independently; DeepEP sends a token once per
        destination node (then forwards over NVLink), and routing is limited to `node_limit` nodes.
        """
        if not self.moe or ep_nodes <= 1:
            return 0.0
        others = ep_nodes - 1
        expected = others * (1.0 - (others / ep_nodes) ** self.experts_per_token)
        return min(expected, self.node_limit - 1)

    def a2a_bytes_per_token(self, ep_nodes: int) -> float:
        """Bytes one GPU sends (and, symmetrically, receives) over its compute NIC per token of a pass."""
        return self.moe_layers * self.a2a_bytes_per_token_layer_node * self.remote_nodes_per_token(ep_nodes)

    def cache_compute_ratio_gb_per_pflop(self, context: int, append: int) -> float:
        """GB of hit attention KV per PFLOP of new-token compute for one turn (docs/architecture.md#paper-models).
        The paper's table counts the attention KV only (its DeepSeek-V3.2 figures match 656 B/token/layer
        within 2-6 %), so the indexer key cache is left out here (docs/modeling.md#indexer-key-cache)."""
        attention, dense, expert = self.prefill_flops(context, append)
        return (context * self.kv_bytes_per_token_layer * self.layers / 1e9) / ((attention + dense + expert) / 1e15)


def _positive_root(a: float, b: float, c: float) -> float:
    """The larger root of a x^2 + b x + c (b > 0, c <= 0), or of b x + c when a is 0."""
    if a == 0:
        return -c / b
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


@lru_cache(maxsize=1 << 16)
def _prefill_attention_flops(layers: int, sparse_top_k: int | None, attn_flops_per_qk_layer: float,
                             indexer_flops_per_qk_layer: float, cached: int, new: int) -> float:
    # Query t (1..new) attends min(cached + t, top_k) keys; the indexer scores all cached + t keys.
    first, last = cached + 1, cached + new
    total_keys = (first + last) * new / 2
    k = sparse_top_k
    if k is None or last <= k:
        attended = total_keys
    elif first >= k:
        attended = k * new
    else:
        below = k - first + 1  # queries with cached + t <= k
        attended = (first + k) * below / 2 + k * (new - below)
    return layers * (attended * attn_flops_per_qk_layer + total_keys * indexer_flops_per_qk_layer)


# MLA with weight absorption: QK^T over 512 latent + 64 rope dims and PV over 512 dims, per head.
_MLA_QK_PV_DIMS = 576 + 512
# DeepEP per token and destination node: FP8 dispatch (hidden + 1/128 scales) and BF16 combine.


def _deepep_bytes(hidden: int) -> float:
    return hidden * (1 + 4 / 128) + hidden * 2


DS660B = ModelSpec(
    name="ds660b",
    layers=61,
    # MLA FP8 latent 512 + scales + 64 rope dims = 656 B/token/layer (docs/architecture.md#paper-models, DeepSeek-V3.2).
    kv_bytes_per_token_layer=656,
    # 37 B active parameters (DeepSeek-V3 report); routed experts: 58 MoE layers x 8 experts x 3 x 7168 x 2048
    # = 20.4 B; the other 16.6 B (MLA, 3 dense FFN layers, shared expert, embeddings/head) are per-GPU work.
    dense_flops_per_token=2 * 16.6e9,
    expert_flops_per_token=2 * 20.4e9,
    attn_flops_per_qk_layer=2 * 128 * _MLA_QK_PV_DIMS,  # 128 heads
    weights_bytes=671e9,  # 671 B parameters in FP8 (DeepSeek-V3 report)
    moe=True,
    sparse_top_k=2048,  # DSA top-2048 (docs/architecture.md#paper-models)
    indexer_flops_per_qk_layer=2 * 64 * 128,  # indexer 64 heads x dim 128 (docs/architecture.md#paper-models)
    indexer_key_bytes_per_token_layer=128 + 4,  # FP8 128-dim indexer key + scale
    a2a_bytes_per_token_layer_node=_deepep_bytes(7168),
    moe_layers=58,
    experts_per_token=8,
    source="DeepSeek-V3 technical report (arXiv 2412.19437) and DeepSeek-V3.2 DSA; docs/architecture.md#paper-models",
)

DS27B = ModelSpec(
    name="ds27b",
    layers=30,
    kv_bytes_per_token_layer=656,  # [assumed] same MLA latent as V3.2 (docs/architecture.md#paper-models)
    # [assumed] V3.2-like, hidden 2560, 72 routed experts (6 active) + 2 shared. Expert FFN width 1408
    # (DeepSeek-V2-Lite's) makes the total ~27 B: routed active 30 x 6 x 3 x 2560 x 1408 = 1.95 B;
    # shared experts 0.65 B, MLA ~1.8 B, embeddings/head 0.33 B = 2.8 B per-GPU work.
    dense_flops_per_token=2 * 2.8e9,
    expert_flops_per_token=2 * 1.95e9,
    attn_flops_per_qk_layer=2 * 32 * _MLA_QK_PV_DIMS,  # [assumed] 32 heads at hidden 2560
    weights_bytes=27e9,  # FP8
    moe=True,
    sparse_top_k=1024,  # docs/architecture.md#paper-models
    indexer_flops_per_qk_layer=2 * 32 * 64,  # indexer 32 heads x dim 64 (docs/architecture.md#paper-models)
    indexer_key_bytes_per_token_layer=64 + 4,
    a2a_bytes_per_token_layer_node=_deepep_bytes(2560),
    moe_layers=30,
    experts_per_token=6,
    source="docs/architecture.md#paper-models (DS 27B, V3.2-like); undisclosed widths [assumed] from DeepSeek-V2-Lite",
)

QWEN32B = ModelSpec(
    name="qwen32b",
    layers=64,
    kv_bytes_per_token_layer=2 * 8 * 128 * 2,  # GQA 8 KV heads x 128, K and V, FP16: 256 KiB/token in all
    dense_flops_per_token=2 * 31.8e9,  # Qwen2.5-32B: 32.5 B params, of which 0.78 B input embedding (no FLOPs)
    expert_flops_per_token=0.0,
    attn_flops_per_qk_layer=2 * 2 * 40 * 128,  # 40 query heads x 128, QK^T and PV
    # [assumed] FP8 weights (32.5 GB): with BF16 (65 GB) one 80 GB GPU would hold barely one 48K context.
    weights_bytes=32.5e9,
    moe=False,
    source="Qwen2.5-32B config (64 layers, hidden 5120, 40/8 heads, FFN 27648); docs/architecture.md#paper-models",
)

DEEPSEEK_V3 = ModelSpec(
    name="deepseek-v3",
    layers=61,
    kv_bytes_per_token_layer=656,  # as V3.2 (FP8 latent), for the cache-compute comparison
    dense_flops_per_token=2 * 16.6e9,
    expert_flops_per_token=2 * 20.4e9,
    attn_flops_per_qk_layer=2 * 128 * _MLA_QK_PV_DIMS,
    weights_bytes=671e9,
    moe=True,
    a2a_bytes_per_token_layer_node=_deepep_bytes(7168),
    moe_layers=58,
    experts_per_token=8,
    source="DeepSeek-V3 technical report: dense MLA, no sparse attention",
)

MODELS: dict[str, ModelSpec] = {m.name: m for m in (DS660B, DS27B, QWEN32B, DEEPSEEK_V3)}
# The names a scenario's model.name accepts, derived from the registry above (add a model there and
# it is accepted; the enum values are the YAML spellings).
ModelName = StrEnum("ModelName", [(name.upper().replace("-", "_"), name) for name in MODELS])  # type: ignore[misc]

# ------------------------------------------------------------------ cache-compute table only
# Two more models for the cache-compute ratio table (docs/architecture.md#paper-models); scenarios cannot simulate them
# (model.name does not list them). KV is BF16 (2 bytes), the serving default for both.

# GPT-OSS-120B (openai/gpt-oss-120b config.json): 36 layers alternating sliding-window (128 tokens)
# and full attention; 64 query heads, 8 KV heads x head_dim 64; hidden 2880; 128 experts, 4 active,
# expert FFN 2880 (SwiGLU); vocab 201,088, untied head; experts MXFP4, the rest BF16; ~5.1 B active.
# Only the 18 full-attention layers keep the whole context, so the per-layer KV and attention numbers
# below are the average over all 36 layers (the 128-token windows are left out: negligible at 16K+).
GPT_OSS_120B = ModelSpec(
    name="gpt-oss-120b",
    layers=36,
    kv_bytes_per_token_layer=2 * 8 * 64 * 2 / 2,  # K and V, 8 heads x 64, BF16, on half of the layers
    # attention projections 36 x (2 x 2880 x 4096 + 2 x 2880 x 512) = 0.955 B, plus the head 0.579 B
    dense_flops_per_token=2 * (0.955e9 + 0.579e9),
    expert_flops_per_token=2 * 36 * 4 * 3 * 2880 * 2880,  # 3.58 B routed active
    attn_flops_per_qk_layer=2 * 2 * 64 * 64 / 2,  # QK^T and PV over 64 heads x 64, half of the layers
    weights_bytes=63e9,  # ~60.8 GiB checkpoint (MXFP4 experts)
    moe=True,
    moe_layers=36,
    experts_per_token=4,
    source="openai/gpt-oss-120b config.json and model card (116.8 B total, 5.1 B active)",
)

# Qwen3-235B-A22B (Qwen/Qwen3-235B-A22B config.json): 94 layers, GQA 64 query / 4 KV heads x 128,
# hidden 4096, 128 experts, 8 active, expert FFN 1536, no shared expert; vocab 151,936, untied head.
QWEN3_235B = ModelSpec(
    name="qwen3-235b-a22b",
    layers=94,
    kv_bytes_per_token_layer=2 * 4 * 128 * 2,  # K and V, 4 heads x 128, BF16: 188 KiB/token in all
    # attention projections 94 x (2 x 4096 x 8192 + 2 x 4096 x 512) = 6.70 B, plus the head 0.62 B
    dense_flops_per_token=2 * (6.70e9 + 0.62e9),
    expert_flops_per_token=2 * 94 * 8 * 3 * 4096 * 1536,  # 14.2 B routed active (22 B active in all)
    attn_flops_per_qk_layer=2 * 2 * 64 * 128,
    weights_bytes=235e9 * 2,  # BF16
    moe=True,
    moe_layers=94,
    experts_per_token=8,
    source="Qwen/Qwen3-235B-A22B config.json (235 B total, 22 B active)",
)

# Every model with a spec, simulated or not: the cache-compute ratio table uses these.
ALL_MODELS: dict[str, ModelSpec] = {**MODELS, **{m.name: m for m in (GPT_OSS_120B, QWEN3_235B)}}


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(sorted(MODELS))}") from None

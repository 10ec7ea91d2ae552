"""DE-buffer bypass: GPUDirect RDMA of the prompt KV straight into decode HBM.

See docs/whatif.md#3-de-buffer-bypass-gpudirect-rdma-into-decode-hbm.

In the paper's design (paper §4.1) the prompt KV gathers in the decode node's DRAM buffer (the DE
buffer) while the prefill runs, and only when all layers are there does the DE copy it to HBM in one
go (H2D through its compute NIC) and free the buffer. That costs one extra pass of the KV through the
decode node's DRAM and its compute NIC, but keeps the KV out of HBM until decoding can start.

With `policy.de_bypass: true` the prefill engine writes the KV it hands off straight into the DE's
HBM (GPUDirect RDMA: PE compute NIC -> DE compute NIC -> DE HBM, no DE DRAM), so:

- PE-side reads: nothing lands in the DE buffer and there is no H2D at the DE;
- DE-side reads: the hit KV still arrives from storage in the DE buffer (the storage NIC writes host
  DRAM), feeds the PE from there as before, and is copied to HBM at the hand-off (the H2D of the hit
  part only); the new tokens' KV arrives in HBM directly.

The price is HBM held earlier: the handed-off KV sits in decode HBM from the start of the prefill
until the request joins the batch. dpsim reserves decode HBM at dispatch in both designs (the DE
choice checks free HBM when it places a request, paper §5), so the simulated times show the bandwidth
side; `summary()` reports the HBM side: decode HBM occupied before decoding, as a share of the decode
GPUs' KV capacity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dpsim.kernel.entities import ReadSide
from dpsim.kernel.resources.elements import Link

if TYPE_CHECKING:
    from dpsim.kernel.entities import Request
    from dpsim.kernel.resources.hardware import Node


def de_buffer_tokens(req: Request) -> int:
    """Tokens of the request's KV that pass through the DE node's DRAM buffer under the bypass: the
    hit KV when the DE side reads it, else none."""
    return req.turn.cached_tokens if req.read_side is ReadSide.DECODE else 0


def hand_off_path(src: Node, src_gpu: int, dst: Node, dst_gpu: int) -> list[Link]:
    """PE HBM -> PE compute NIC -> DE compute NIC -> DE HBM (GPUDirect RDMA, no DE DRAM)."""
    return [src.cnic_tx[src_gpu], dst.cnic_rx[dst_gpu]]


def early_hbm_bytes(turns: pd.DataFrame, kv_bytes_per_token: float) -> np.ndarray:
    """Bytes each turn's hand-off writes into decode HBM before it decodes: the whole prompt on the PE
    read path, the new tokens on the DE path (the hit KV follows at the hand-off, from the buffer)."""
    tokens = np.where(turns.read_side == ReadSide.DECODE, turns.input_tokens - turns.cached_tokens, turns.input_tokens)
    return tokens.astype(float) * kv_bytes_per_token


def summary(turns: pd.DataFrame, kv_bytes_per_token: float, decode_kv_capacity_bytes: float) -> dict:
    """The `de_bypass` entry of a run's summary: decode HBM held by handed-off KV before its request
    decodes (from the prefill's start to the join), time-weighted mean and peak over the run, as a
    share of the decode GPUs' KV capacity; and the mean time a byte is held early."""
    done = turns.dropna(subset=["t_prefill_start", "t_kv_at_decode"])
    if done.empty or decode_kv_capacity_bytes <= 0:
        return {"hbm_held_early_mean": None, "hbm_held_early_peak": None, "hbm_held_early_s_mean": None}
    size = early_hbm_bytes(done, kv_bytes_per_token)
    start = done.t_prefill_start.to_numpy(float)
    end = done.t_kv_at_decode.to_numpy(float)
    t0, t1 = float(turns.t_arrive.min()), float(np.nanmax(turns.t_finish.to_numpy(float)))
    times = np.concatenate([start, end])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(np.concatenate([size, -size])[order])
    seg = np.diff(np.append(times, t1))
    mean = float(np.sum(level * seg) / max(t1 - t0, 1e-12))
    held_s = float(np.average(end - start, weights=size)) if size.sum() > 0 else 0.0
    return {"hbm_held_early_mean": _r(mean / decode_kv_capacity_bytes),
            "hbm_held_early_peak": _r(float(level.max()) / decode_kv_capacity_bytes),
            "hbm_held_early_s_mean": _r(held_s)}


def _r(x: float) -> float:
    return float(f"{x:.9g}")

"""Invariants checked at the end of every run (cheap); tests/test_invariants.py shows each one fires
when its property is broken.

1. Conservation of turns: every turn that started finished (unless the run was cut by max_sim_time
   or a stop rule).
2. Conservation of bytes: bytes read from storage equal the hit KV of the dispatched turns, split
   by read side; every byte handed to decode arrived.
3. Capacity: no link ever carried more than its capacity (checked by the network at every re-rate,
   and again per time bin).
4. Causality: each turn's timestamps are in life-cycle order; the clock never went back.
5. No starvation: the low class was never held below its guarantee on a link while it had demand
   there and was not limited elsewhere (checked by the network at every re-rate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsim.kernel.entities import ReadSide
from dpsim.kernel.simulation import Simulation

_ORDER = ["t_arrive", "t_dispatch", "t_read_start", "t_read_end", "t_prefill_start", "t_first_token",
          "t_kv_at_decode", "t_second_token", "t_finish"]


def check_invariants(sim: Simulation, turns: pd.DataFrame) -> list[str]:
    failures: list[str] = []
    net = sim.cluster.net
    cut = sim.scenario.run.max_sim_time is not None or sim.stop_reason is not None
    # 1. turns
    if not cut:
        unfinished = int(turns.t_finish.isna().sum())
        if unfinished or len(turns) != sim.turns_total:
            failures.append(f"turn conservation: {len(turns)} of {sim.turns_total} turns started, {unfinished} unfinished")
    # 2. bytes
    if not sim.switches.free_io and not cut:
        kv = sim.model.kv_bytes_per_token
        tier = sim.dram_tier  # hit KV found in the DRAM tier is not read from storage
        de_side = float(turns.hit_tokens_de.sum())  # whole reads on the DE side and the DE part of split reads
        for side, expected_tokens, tag in (
                (ReadSide.PREFILL, float(turns.cached_tokens.sum()) - de_side, "storage_read_pe_side"),
                (ReadSide.DECODE, de_side, "storage_read_de_side")):
            if tier is not None:
                expected_tokens -= tier.hit_tokens[side]
            expected = expected_tokens * kv
            got = net.bytes_by_tag.get(tag, 0.0)
            if not np.isclose(expected, got, rtol=1e-9, atol=1.0):
                failures.append(f"byte conservation: {tag} moved {got:.6g} B, dispatched turns hit {expected:.6g} B")
        handed = net.bytes_by_tag.get("kv_h2d_de", 0.0)
        expected_handed = float(turns.input_tokens.sum()) * kv
        if sim.scenario.policy.de_bypass:  # only DE-side hits pass through the DE buffer (dpsim.kernel.de_bypass)
            expected_handed = float(turns.loc[turns.read_side == ReadSide.DECODE, "cached_tokens"].sum()) * kv
        if not np.isclose(handed, expected_handed, rtol=1e-9, atol=1.0):
            failures.append(f"byte conservation: decode H2D moved {handed:.6g} B, prompts hold {expected_handed:.6g} B")
    # 3 and 5: recorded by the network as it ran.
    failures.extend(net.violations[:5])
    if len(net.violations) > 5:
        failures.append(f"... and {len(net.violations) - 5} more network violations")
    for link in net.links:
        bins, high_bytes, low_bytes = link.bin_arrays()
        high, low = np.frombuffer(high_bytes), np.frombuffer(low_bytes)
        over = np.flatnonzero(high + low > link.capacity * net.bin_s * (1 + 1e-6))
        if len(over):
            i = over[0]
            failures.append(f"capacity: {link.name} moved {high[i] + low[i]:.6g} B in bin {bins[i]}, above its capacity")
    # 4. causality
    times = turns[_ORDER].to_numpy(dtype=float)
    for i in range(len(_ORDER) - 1):
        a, b = times[:, i], times[:, i + 1]
        bad = ~np.isnan(a) & ~np.isnan(b) & (b < a - 1e-9)
        if bad.any():
            failures.append(f"causality: {int(bad.sum())} turns have {_ORDER[i + 1]} before {_ORDER[i]}")
    if (turns.t_finish > sim.env.now + 1e-9).any():
        failures.append("causality: a turn finished after the end of the simulation")
    return failures

"""DE-buffer bypass (dpsim.kernel.de_bypass, docs/whatif.md#3-de-buffer-bypass-gpudirect-rdma-into-decode-hbm):
where the prompt KV's bytes go, and the HBM it holds early."""

import pandas as pd
import pytest

from dpsim import api
from dpsim.kernel import de_bypass
from dpsim.scenario.config import ScenarioError

QUICK = "scenarios/quickstart.yaml"
SMALL = ["workload.mal=64K", "workload.agents=16", "workload.max_turns=12", "hardware.storage_nic.bandwidth=25Gbps"]
KV = (656 + 68) * 30  # DS 27B bytes per token: MLA KV + indexer key cache (docs/modeling.md#indexer-key-cache)
# Transfer kinds that cross a decode node's DRAM once each when the tier is off (dpsim.kernel.resources.hardware paths).
DE_DRAM_TAGS = ("storage_read_de_side", "kv_de_to_pe", "kv_pe_to_de", "kv_h2d_de", "kv_d2h_de", "storage_write")


@pytest.fixture(scope="module")
def runs():
    return {on: api.run(api.load_scenario(QUICK, SMALL + [f"policy.de_bypass={on}"]), progress=False)
            for on in ("false", "true")}


def _decode_dram_bytes(result):
    links = result.links
    dram = links[(links.kind == "dram") & links.node.str.startswith("D")]
    return float(dram.bytes_low.sum() + dram.bytes_high.sum())


def test_bypass_keeps_only_de_side_hits_in_the_decode_buffer(runs):
    result = runs["true"]
    turns, moved = result.turns, result.summary["bytes_by_path"]
    assert result.invariant_failures == []
    de_hits = float(turns.loc[turns.read_side == "D", "cached_tokens"].sum()) * KV
    assert de_hits > 0
    assert moved["kv_h2d_de"] == pytest.approx(de_hits)  # the one-shot H2D carries the DE-side hits only
    handed = float(turns.input_tokens.sum()) * KV - de_hits
    assert moved["kv_pe_to_de"] == pytest.approx(handed)  # unchanged: PE-side hits + all new tokens


@pytest.mark.parametrize("on", ["false", "true"])
def test_decode_dram_carries_exactly_the_buffered_transfers(runs, on):
    """Closed form of the paths: a decode node's DRAM carries every transfer kind that touches it
    once; with the bypass the hand-off no longer does."""
    moved = runs[on].summary["bytes_by_path"]
    tags = [t for t in DE_DRAM_TAGS if not (on == "true" and t == "kv_pe_to_de")]
    assert _decode_dram_bytes(runs[on]) == pytest.approx(sum(moved.get(t, 0.0) for t in tags), rel=1e-9)
    if on == "true":
        saved = _decode_dram_bytes(runs["false"]) - _decode_dram_bytes(runs["true"])
        assert saved > 0.4 * _decode_dram_bytes(runs["false"])


def test_bypass_reports_the_hbm_it_holds_early(runs):
    early = runs["true"].summary["de_bypass"]
    assert 0 < early["hbm_held_early_mean"] <= early["hbm_held_early_peak"] <= 1
    assert early["hbm_held_early_s_mean"] > 0
    assert "de_bypass" not in runs["false"].summary


def test_hbm_held_early_closed_form():
    """Two turns: 10 B held over [0, 2] and 20 B over [1, 3], run [0, 4], capacity 100 B:
    time-weighted mean (10*2 + 20*2)/4 = 15 B, peak 30 B."""
    turns = pd.DataFrame({"read_side": ["P", "D"], "input_tokens": [10, 25], "cached_tokens": [3, 5],
                          "t_arrive": [0.0, 0.5], "t_prefill_start": [0.0, 1.0], "t_kv_at_decode": [2.0, 3.0],
                          "t_finish": [2.5, 4.0]})
    got = de_bypass.summary(turns, 1.0, 100.0)
    assert got["hbm_held_early_mean"] == pytest.approx(0.15)
    assert got["hbm_held_early_peak"] == pytest.approx(0.30)
    assert got["hbm_held_early_s_mean"] == pytest.approx((10 * 2 + 20 * 2) / 30)


def test_bypass_switch_is_validated():
    with pytest.raises(ScenarioError, match=r"policy\.de_bypass = 'sometimes'"):
        api.load_scenario(QUICK, ["policy.de_bypass=sometimes"])

"""End-to-end properties of small simulations: invariants, ordering of systems, determinism."""

import json

import pytest

from dpsim import api
from dpsim.scenario.models import DS660B, QWEN32B

QUICK = "scenarios/quickstart.yaml"
# A storage-bound miniature: one prefill and one decode node, 16 agents of the 64K set, 12 turns.
STORAGE_BOUND = ["workload.mal=64K", "workload.agents=16", "workload.max_turns=12",
                 "hardware.storage_nic.bandwidth=25Gbps"]


@pytest.fixture(scope="module")
def three():
    sc = api.load_scenario(QUICK, STORAGE_BOUND)
    return api.compare(sc, ["basic", "dualpath", "oracle"], progress=False)


def test_invariants_hold_for_every_system(three):
    for name, result in three.items():
        assert result.invariant_failures == [], name
        assert result.summary["turns"] == result.summary["turns_started"]


def test_oracle_then_dualpath_then_basic_when_storage_bound(three):
    jct = {k: r.summary["jct_s"] for k, r in three.items()}
    assert jct["oracle"] <= jct["dualpath"] < jct["basic"]


def test_dualpath_reads_on_both_sides_and_basic_only_on_prefill(three):
    assert three["basic"].summary["read_side_fraction_de"] == 0
    assert 0 < three["dualpath"].summary["read_side_fraction_de"] < 1
    assert "storage_read_pe_side" not in three["oracle"].summary["bytes_by_path"]


def test_same_seed_gives_identical_summary(tmp_path):
    sc = api.load_scenario(QUICK, ["workload.agents=8", "workload.max_turns=6"])
    a = api.run(sc, progress=False).write(tmp_path / "a")
    b = api.run(sc, progress=False).write(tmp_path / "b")
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    other = api.run(api.with_overrides(sc, run={"seed": 99}), progress=False)
    assert other.summary != json.loads((a / "summary.json").read_text())


def test_online_mode_poisson_arrivals():
    sc = api.load_scenario(QUICK, ["workload.mode=online", "workload.aps=4", "workload.agents=8",
                                   "workload.max_turns=4"])
    result = api.run(sc, progress=False)
    starts = result.turns[result.turns.turn == 0].t_arrive.sort_values().to_numpy()
    assert starts[0] > 0 and len(set(starts)) == 8
    assert result.invariant_failures == []


def test_stop_rule_ends_the_run_early_and_is_recorded():
    sc = api.load_scenario(QUICK, ["workload.mode=online", "workload.aps=2", "workload.agents=16",
                                   "workload.max_turns=6"])
    full = api.run(sc, progress=False)
    asked = []

    def after_two_checks(sim):
        asked.append(sim.env.now)
        return "enough" if len(asked) == 2 else None

    cut = api.run(sc, progress=False, stop_rule=after_two_checks, check_every_s=1.0)
    assert asked == [1.0, 2.0]
    assert cut.summary["stop_reason"] == "enough"
    assert cut.summary["turns"] < full.summary["turns"]
    assert cut.invariant_failures == []  # a cut run does not claim every turn finished
    never = api.run(sc, progress=False, stop_rule=lambda sim: None, check_every_s=1.0)
    assert never.summary["stop_reason"] is None
    assert never.summary["turns"] == full.summary["turns"]


def test_cache_compute_ratio_matches_spec_section_7():
    # Published: Qwen2.5-32B 117-267, DeepSeek-V3.2 13-36 GB/PFLOP for 16K-64K context, append 429.
    assert QWEN32B.cache_compute_ratio_gb_per_pflop(16384, 429) == pytest.approx(117, rel=0.05)
    assert QWEN32B.cache_compute_ratio_gb_per_pflop(65536, 429) == pytest.approx(267, rel=0.05)
    assert DS660B.cache_compute_ratio_gb_per_pflop(16384, 429) == pytest.approx(13, rel=0.1)
    assert DS660B.cache_compute_ratio_gb_per_pflop(65536, 429) == pytest.approx(36, rel=0.1)


def test_request_too_large_for_hbm_is_a_clear_error():
    sc = api.load_scenario(QUICK, ["hardware.gpu.hbm_capacity=4.5GB", "hardware.gpu.hbm_reserved=1GB"])
    with pytest.raises(api.SimulationError, match="HBM"):
        api.run(sc, progress=False)


def test_trace_workload_replays(tmp_path):
    import glob
    sample = sorted(glob.glob("traces/mooncake/*.jsonl"))[0]
    sc = api.load_scenario(QUICK, [f"workload.trace={sample}", "workload.agents=6", "workload.max_turns=3",
                                   "workload.max_context=32K"])
    result = api.run(sc, progress=False)
    assert result.summary["turns"] > 0 and result.invariant_failures == []


def test_missing_trace_is_a_clear_error():
    sc = api.load_scenario(QUICK, ["workload.trace=does/not/exist.jsonl"])
    with pytest.raises(api.ScenarioError, match="workload.trace = 'does/not/exist.jsonl': file not found"):
        api.run(sc, progress=False)


def test_summary_percentiles_skip_unknown_values_and_keep_the_rest():
    """A latency a turn never reached (None, or NaN in a frame) is left out of the summary's
    percentiles and mean; the rest are numpy's percentiles of the known values."""
    import numpy as np
    import pandas as pd

    from dpsim.metrics.results import _percentiles

    known = [0.3, 1.5, 0.7, 2.25, 0.1]
    expected = {"p50": 0.7, "p90": float(np.percentile(known, 90)), "p99": float(np.percentile(known, 99)),
                "mean": 0.97}
    for values in ([None, 0.3, 1.5, None, 0.7, 2.25, 0.1], pd.Series([np.nan, 0.3, 1.5, 0.7, np.nan, 2.25, 0.1])):
        assert _percentiles(values) == pytest.approx(expected, rel=1e-9)
    assert _percentiles([None, np.nan]) == {"p50": None, "p90": None, "p99": None, "mean": None}
    assert _percentiles(pd.Series([], dtype=float))["mean"] is None

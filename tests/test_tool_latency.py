"""Tool latency (docs/whatif.md#5-tool-latency-and-larger-working-sets): a fixed latency per turn, and
latencies drawn from real Claude Code gaps (dpsim.workload.tool_latency)."""

import numpy as np
import pytest

from dpsim import api
from dpsim.scenario.config import ScenarioError
from dpsim.workload.tool_latency import CLAUDE_CODE_GAP_PERCENTILES_S, draw_gaps, gap_cdf

QUICK = "scenarios/quickstart.yaml"


def test_one_agent_waits_exactly_its_tool_latency_per_turn():
    """Alone on the cluster, an agent's turns take the same time whatever the gaps between them, so
    its JCT grows by exactly (turns - 1) x latency."""
    base = ["workload.agents=1", "workload.max_turns=6"]
    jct = {t: api.run(api.load_scenario(QUICK, base + [f"workload.tool_latency={t}s"]), progress=False).summary["jct_s"]
           for t in (0, 7)}
    assert jct[7] == pytest.approx(jct[0] + 5 * 7, rel=1e-9)


def test_gap_table_is_a_distribution():
    q = np.asarray(CLAUDE_CODE_GAP_PERCENTILES_S)
    assert len(q) == 101 and np.all(np.diff(q) >= 0)
    assert q[50] == 10.0  # the published median gap of the trace set (traces/README.md: p50 10 s)
    assert gap_cdf(-1) == 0.0 and gap_cdf(q[-1]) == 1.0
    assert gap_cdf(30.0) == pytest.approx(73 / 100 + (30 - 29) / (32 - 29) / 100)


def test_draws_follow_the_truncated_distribution():
    rng = np.random.default_rng(0)
    gaps = draw_gaps(rng, 200_000, 30.0)
    assert gaps.min() >= 0 and gaps.max() <= 30.0
    # Closed form: the conditional median is the quantile at half of F(30 s).
    half = gap_cdf(30.0) / 2
    assert np.median(gaps) == pytest.approx(np.interp(half, np.linspace(0, 1, 101), CLAUDE_CODE_GAP_PERCENTILES_S),
                                            abs=0.05)
    assert np.array_equal(draw_gaps(np.random.default_rng(0), 5, 30.0), gaps[:5])  # deterministic for a seed


def test_claude_code_gaps_change_only_the_gaps():
    fixed = api.build_workload(api.load_scenario(QUICK, ["workload.agents=4"]))
    drawn = api.build_workload(api.load_scenario(QUICK, ["workload.agents=4", "workload.tool_latency_source=claude_code",
                                                        "workload.tool_latency_max=20s"]))
    for a, b in zip(fixed, drawn, strict=True):
        assert [(t.input_tokens, t.cached_tokens, t.output_tokens) for t in a.turns] == \
               [(t.input_tokens, t.cached_tokens, t.output_tokens) for t in b.turns]
        assert b.turns[0].think_time_s == 0 and all(0 <= t.think_time_s <= 20 for t in b.turns)
    assert len({t.think_time_s for b in drawn for t in b.turns[1:]}) > 10


@pytest.mark.parametrize("setting, message", [
    (["workload.tool_latency_source=always"], "workload.tool_latency_source = 'always'"),
    (["workload.tool_latency_max=0s"], "workload.tool_latency_max = '0s'"),
    (["workload.tool_latency=30"], None),  # seconds are the unit of a bare time: allowed
    (["workload.tool_latency_source=claude_code", "workload.trace=../traces/native/claude_code_sample.dpsim.jsonl"],
     "a trace carries its own think times"),
])
def test_settings_are_validated_with_located_errors(setting, message):
    if message is None:
        assert api.load_scenario(QUICK, setting).workload.tool_latency == 30
        return
    with pytest.raises(ScenarioError) as info:
        api.load_scenario(QUICK, setting)
    assert message in str(info.value) and "--set" in str(info.value)

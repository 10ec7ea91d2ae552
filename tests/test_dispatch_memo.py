"""Dispatch's memo of "every prefill engine is overloaded" (Simulation.prefill_pool_version): it may
only skip scheduler calls that would have said False again, so placements and results are unchanged."""

import pandas as pd
import pytest

from dpsim import api
from dpsim.kernel import simulation
from dpsim.kernel.policies.scheduler import DualPathScheduler

# A tiny beta (tokens one GPU prefills in 1 ms: one request at a time) keeps the prefill engines overloaded most of the
# time, so dispatch blocks on them often.
OVERLOADED = ("scenarios/quickstart.yaml", ["workload.agents=64", "workload.max_turns=4", "policy.beta=1ms"])
# Adaptive P/D under prefill pressure: decode nodes turn prefill, so the prefill pool gains engines
# (which must also end the memo), as in tests/test_whatif_policies.py.
GAINS_ENGINES = ("scenarios/paper/ds27b-1p1d.yaml", [
    "workload.agents=48", "workload.max_turns=10", "workload.mal=32K", "cluster.prefill_nodes=1",
    "cluster.decode_nodes=3", "cluster.prefill_ep_nodes=1", "cluster.decode_ep_nodes=1", "policy.beta=1ms",
    "policy.adaptive_pd.mode=backlog", "workload.phase_profile.first_append_scale=8",
    "policy.adaptive_pd.backlog_high=0.05s", "policy.adaptive_pd.backlog_low=0.01s",
    "policy.adaptive_pd.check_every=1s", "policy.adaptive_pd.switch_cost=0s"])


def _run(monkeypatch, case, memo: bool):
    calls = {"asked": 0, "full": 0}
    asked = DualPathScheduler.prefill_available

    def counting(self, engines):
        calls["asked"] += 1
        available = asked(self, engines)
        calls["full"] += not available
        return available

    monkeypatch.setattr(DualPathScheduler, "prefill_available", counting)
    if not memo:
        dispatch = simulation.Simulation.dispatch

        def forgetful(self):
            self._prefill_full_at = -1  # forget the memo: ask the scheduler every time
            dispatch(self)

        monkeypatch.setattr(simulation.Simulation, "dispatch", forgetful)
    result = api.run(api.load_scenario(*case), progress=False)
    monkeypatch.undo()
    return result, calls


@pytest.mark.parametrize("case", [OVERLOADED, GAINS_ENGINES], ids=["overloaded", "gains-engines"])
def test_memo_skips_only_calls_that_would_say_full(monkeypatch, case):
    with_memo, memo_calls = _run(monkeypatch, case, memo=True)
    without, plain_calls = _run(monkeypatch, case, memo=False)
    assert plain_calls["full"] > 0, "the scenario must block on overloaded prefill engines"
    assert memo_calls["asked"] < plain_calls["asked"]  # the memo did skip calls ...
    # ... and only ones that said False: every True answer was still asked for
    assert plain_calls["asked"] - plain_calls["full"] == memo_calls["asked"] - memo_calls["full"]
    pd.testing.assert_frame_equal(with_memo.turns, without.turns)
    assert with_memo.summary["jct_s"] == without.summary["jct_s"]
    assert with_memo.invariant_failures == []
    if case is GAINS_ENGINES:
        assert with_memo.summary["prefill_nodes_mean"] > 1.0  # the pool did gain engines

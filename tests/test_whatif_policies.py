"""What-if policies of docs/whatif.md sections 2, 4 and 6: split reads, adaptive P/D roles and the
phase profile, tail-aware (deadline) scheduling. Each has a closed-form or small-scenario check of its
mechanism, and switched off the simulation is the one of before (a digest recorded before they
existed)."""

import hashlib
from dataclasses import dataclass

import pytest
from engine_stubs import E, Node

from dpsim import api
from dpsim.kernel.policies.deadline import DeadlineScheduler, enqueue_by_deadline
from dpsim.kernel.policies.split_reads import balanced_de_share, side_of_share
from dpsim.kernel.simulation import SimulationError
from dpsim.scenario.config import ScenarioError
from dpsim.workload.phases import apply_phase_profile
from dpsim.workload.trajectory import Trajectory, Turn, agentic_turns

DS27B = "scenarios/paper/ds27b-1p1d.yaml"
DS660B = "scenarios/paper/ds660b-2p4d.yaml"
# Every turn time and every link byte count of three small runs, recorded at d562388 (before these
# options existed): dualpath offline DS 27B, dualpath online DS 660B, basic DS 27B 1P3D.
BEFORE = [
    (DS27B, ["workload.agents=24", "workload.max_turns=8", "workload.mal=32K"],
     "4ac613bc5273f54186fd6cebea800e122d7de0a1"),
    (DS660B, ["workload.agents=16", "workload.max_turns=6", "workload.mode=online", "workload.aps=2"],
     "2f3c5044fc0551f089463cbe08ae8ab5d963f60d"),
    (DS27B, ["workload.agents=24", "workload.max_turns=8", "workload.mal=32K", "cluster.decode_nodes=3",
             "policy.system=basic"], "3d8321ca3ad176cadd60f2acc5f149d3ec7edd67"),
]
OFF = ["policy.read_split=whole", "policy.dispatch_order=fifo", "policy.adaptive_pd.mode=fixed"]
# The pins also predate the indexer key cache (docs/modeling.md#indexer-key-cache), so they run without it.
PRE_INDEXER = ["model.indexer_keys_cached=false"]


def _digest(result) -> str:
    """The turns table (every column it had before: all but hit_tokens_de) and the links table."""
    turns = result.turns.drop(columns=["hit_tokens_de"])
    return hashlib.sha1(turns.to_csv().encode() + result.links.to_csv().encode()).hexdigest()


@pytest.mark.parametrize("path,sets,digest", BEFORE)
def test_switched_off_the_run_is_bit_identical_to_before(path, sets, digest):
    default = api.run(api.load_scenario(path, sets + PRE_INDEXER), progress=False)
    explicit = api.run(api.load_scenario(path, sets + PRE_INDEXER + OFF), progress=False)
    assert _digest(default) == _digest(explicit) == digest
    assert default.summary == explicit.summary
    assert not {"hit_fraction_de", "role_switches", "prefill_nodes_mean"} & set(default.summary)


# ------------------------------------------------------------------------------------- split reads
def test_balanced_share_equalises_the_two_read_queues_in_whole_blocks():
    assert balanced_de_share(0, 0, 640, 64) == 320  # empty queues: half each
    assert balanced_de_share(1000, 0, 640, 64) == 640  # PE queue far longer: all on the DE side
    assert balanced_de_share(0, 1000, 640, 64) == 0
    share = balanced_de_share(300, 100, 640, 64)  # exact balance at 420 tokens -> 448 (7 blocks)
    assert share == 448 and share % 64 == 0
    assert abs((300 + 640 - share) - (100 + share)) <= 64  # queues equal to within a block
    assert balanced_de_share(0, 0, 0, 64) == 0
    assert [side_of_share(s, 640) for s in (0, 320, 640)] == ["P", "S", "D"]


def _one_turn(hit_tokens: int, new_tokens: int = 64):
    return [Trajectory("t0", [Turn(hit_tokens + new_tokens, hit_tokens, 4)])]


def test_a_split_read_of_one_request_takes_half_the_time_of_a_whole_one():
    """One request alone, both nodes idle: the whole hit through one storage NIC, or half through
    each at once; storage request latency 0, so the read time halves exactly."""
    sets = ["workload.agents=1", "hardware.storage.request_latency=0s"]
    reads = {}
    for split in ("whole", "balanced"):
        sc = api.load_scenario(DS27B, sets + [f"policy.read_split={split}"])
        result = api.run(sc, _one_turn(64 * 200), progress=False)
        turn = result.turns.iloc[0]
        reads[split] = turn.t_read_end - turn.t_read_start
        assert result.invariant_failures == []
        if split == "balanced":
            assert turn.read_side == "S" and turn.hit_tokens_de == 64 * 100
            assert result.summary["hit_fraction_de"] == pytest.approx(0.5)
            kv = sc.model and result.summary["bytes_by_path"]
            assert kv["storage_read_pe_side"] == pytest.approx(kv["storage_read_de_side"])
    assert reads["whole"] / reads["balanced"] == pytest.approx(2.0, rel=1e-6)


def test_split_reads_conserve_bytes_per_side_in_a_busy_run():
    sc = api.load_scenario(DS27B, ["workload.agents=24", "workload.max_turns=8", "workload.mal=32K",
                                   "cluster.decode_nodes=3", "policy.read_split=balanced"])
    result = api.run(sc, progress=False)
    assert result.invariant_failures == []  # includes byte conservation by side, splits counted per part
    turns = result.turns
    assert (turns.read_side == "S").any()
    assert ((turns.hit_tokens_de > 0) & (turns.hit_tokens_de < turns.cached_tokens)).eq(turns.read_side == "S").all()
    kv = result.summary["bytes_by_path"]
    assert kv["storage_read_de_side"] / (kv["storage_read_de_side"] + kv["storage_read_pe_side"]) == pytest.approx(
        result.summary["hit_fraction_de"], rel=1e-6)


def test_split_reads_need_both_paths():
    """Basic has one read path: read_split changes nothing there."""
    sets = ["workload.agents=8", "workload.max_turns=4", "workload.mal=32K", "policy.system=basic"]
    plain = api.run(api.load_scenario(DS27B, sets), progress=False)
    split = api.run(api.load_scenario(DS27B, sets + ["policy.read_split=balanced"]), progress=False)
    assert _digest(plain) == _digest(split) and (split.turns.read_side == "P").all()


def test_bad_read_split_is_a_located_error():
    with pytest.raises(ScenarioError, match=r"policy\.read_split = 'half'.*'whole' or 'balanced'"):
        api.load_scenario(DS27B, ["policy.read_split=half"])


# -------------------------------------------------------------------------- tail-aware scheduling


def test_deadline_picks_the_earliest_expected_start_where_the_paper_rule_picks_the_smallest_tok():
    # Read 100 tokens/s, prefill 100 tokens/s; alpha 300 tokens (3 s), beta 1000.
    # Engine 0: 2.9 s of reading ahead (under alpha) and 0.1 s of prefill; engine 1: 0 s and 0.5 s.
    engines = [E(0, tok=10, node=Node(290)), E(1, tok=50, node=Node(0))]
    deadline = DeadlineScheduler(300, 1000, read_tokens_per_s=100, prefill_tokens_per_s=100)
    assert [deadline.expected_start_s(e) for e in engines] == [pytest.approx(2.9), pytest.approx(0.5)]
    assert deadline.pick_prefill(engines).index == 1
    from dpsim.kernel.policies.scheduler import DualPathScheduler
    assert DualPathScheduler(300, 1000).pick_prefill(engines).index == 0  # both short queues: smallest tok
    assert deadline.pick_prefill([E(0, tok=1001)]) is None  # the beta rule still holds


def test_ready_requests_are_served_oldest_first():
    @dataclass
    class R:
        t_arrive: float

    ready: list = []
    for t in (3.0, 1.0, 2.0, 1.0):
        enqueue_by_deadline(ready, R(t))
    assert [r.t_arrive for r in ready] == [1.0, 1.0, 2.0, 3.0]


def test_deadline_runs_online_with_every_invariant():
    sets = ["workload.agents=16", "workload.max_turns=6", "workload.mode=online", "workload.aps=2",
            "policy.dispatch_order=deadline"]
    result = api.run(api.load_scenario(DS660B, sets), progress=False)
    assert result.invariant_failures == [] and result.summary["turns"] == result.summary["turns_started"]


def test_deadline_with_round_robin_is_a_located_error():
    sc = api.load_scenario(DS27B, ["policy.system=basic", "policy.dispatch_order=deadline"])
    with pytest.raises(SimulationError,
                       match=r"ds27b-1p1d\.yaml: policy\.dispatch_order = deadline: needs the dualpath"):
        api.run(sc, progress=False)


# ------------------------------------------------------------------ phase profile and adaptive P/D
def test_phase_profile_scales_appends_and_generations_by_phase_and_rebuilds_contexts():
    turns = agentic_turns([100, 100, 100, 100], [10, 10, 10, 10])
    [trajectory] = apply_phase_profile([Trajectory("a", turns)], 0.5, 3.0, 1.0, 1.0, 2.0)
    got = trajectory.turns
    assert [t.new_tokens for t in got] == [300, 300, 100, 100]
    assert [t.output_tokens for t in got] == [10, 10, 20, 20]
    assert [t.cached_tokens for t in got] == [0, 310, 620, 740]  # every earlier append and generation
    [cut] = apply_phase_profile([Trajectory("b", agentic_turns([100] * 4, [10] * 4))], 0.5, 3.0, 1.0, 1.0, 1.0,
                                max_context_tokens=700)
    assert [t.input_tokens + t.output_tokens for t in cut.turns] == [310, 620]  # the next (720) passes MAL


def test_phase_profile_with_a_trace_is_a_located_error():
    with pytest.raises(ScenarioError, match=r"workload\.phase_profile.*synthetic set only"):
        api.load_scenario(DS27B, ["workload.trace=x.jsonl", "workload.phase_profile.split=0.5"])


ADAPTIVE = ["workload.agents=48", "workload.max_turns=10", "workload.mal=32K", "cluster.prefill_nodes=2",
            "cluster.decode_nodes=2", "cluster.prefill_ep_nodes=1", "cluster.decode_ep_nodes=1",
            "policy.adaptive_pd.mode=backlog"]


def _simulate(sets):
    from dpsim.kernel.simulation import Simulation
    from dpsim.metrics.results import run_simulation

    sc = api.load_scenario(DS27B, sets)
    trajectories = api.build_workload(sc)
    sim = Simulation(sc, trajectories, progress=False)
    return sim, run_simulation(sim, api.arrival_times(sc, trajectories))


def test_a_switching_node_drains_pays_its_cost_then_serves_only_its_new_role():
    # A backlog always under backlog_low and decode steps always over the TPOT SLO: at the first check
    # a prefill node turns decode, and only one (one prefill node must stay).
    sim, result = _simulate(ADAPTIVE + ["slo.tpot=1us", "policy.adaptive_pd.backlog_high=2000s",
                                        "policy.adaptive_pd.backlog_low=1000s",
                                        "policy.adaptive_pd.check_every=2s", "policy.adaptive_pd.switch_cost=3s"])
    assert result.invariant_failures == [] and result.summary["turns"] == result.summary["turns_started"]
    (t_drain, node, event, role), (t_ready, node2, event2, role2) = sim.roles.log
    assert (event, event2, role, role2, node2) == ("drain", "ready", "D", "D", node) and t_drain == pytest.approx(2.0)
    assert result.summary["role_switches"] == 1
    pe_on_node = {e.index for g in sim.roles.prefill_groups[node] for e in g.engines}
    de_on_node = {e.index for g in sim.roles.decode_groups[node] for e in g.engines}
    turns = result.turns
    held = turns[turns.pe.isin(pe_on_node)]
    assert (held.t_dispatch <= t_drain).all() and len(held)  # no prefill placed on it after the drain began
    assert t_ready >= held.t_first_token.max() + 3.0 - 1e-9  # drained, then the switch cost
    served = turns[turns.de.isin(de_on_node)]
    assert len(served) and (served.t_dispatch >= t_ready).all()  # decode work only once ready
    assert result.summary["role_switching_node_s"] == pytest.approx(t_ready - t_drain)
    span = result.summary["jct_s"]
    assert result.summary["prefill_nodes_mean"] == pytest.approx((2 * t_drain + (span - t_drain)) / span, rel=1e-6)


def test_prefill_pressure_turns_decode_nodes_into_prefill_nodes():
    sets = [s.replace("prefill_nodes=2", "prefill_nodes=1").replace("decode_nodes=2", "decode_nodes=3")
            for s in ADAPTIVE]
    sim, result = _simulate(sets + ["workload.phase_profile.first_append_scale=8",
                                    "policy.adaptive_pd.backlog_high=0.05s", "policy.adaptive_pd.backlog_low=0.01s",
                                    "policy.adaptive_pd.check_every=1s",
                                    "policy.adaptive_pd.switch_cost=0s"])
    assert result.invariant_failures == [] and result.summary["turns"] == result.summary["turns_started"]
    assert any(role == "P" and event == "ready" for _, _, event, role in sim.roles.log)
    assert result.summary["prefill_nodes_mean"] > 1.0


def test_adaptive_pd_needs_one_node_engine_groups_for_moe():
    sc = api.load_scenario(DS27B, ["policy.adaptive_pd.mode=backlog"])
    with pytest.raises(SimulationError, match=r"policy\.adaptive_pd\.mode = backlog: .*prefill_ep_nodes.*got 4 and 18"):
        api.run(sc, progress=False)


def test_backlog_bounds_out_of_order_are_a_located_error():
    with pytest.raises(ScenarioError, match=r"policy\.adaptive_pd\.backlog_low = '20s': must be below backlog_high"):
        api.load_scenario(DS27B, ["policy.adaptive_pd.backlog_low=20s"])


def test_no_prefill_node_turns_decode_while_decode_has_slack():
    sim, result = _simulate(ADAPTIVE + ["slo.tpot=10s", "policy.adaptive_pd.backlog_high=2000s",
                                        "policy.adaptive_pd.backlog_low=1000s", "policy.adaptive_pd.check_every=2s"])
    assert sim.roles.log == [] and result.summary["role_switches"] == 0
    assert result.summary["prefill_nodes_mean"] == pytest.approx(2.0)


# ------------------------------------------------------------------------------- study runner
def test_window_ttft_counts_waiting_turns_with_their_wait_so_far():
    import numpy as np
    import pandas as pd

    from dpsim.reproduce.whatif_studies import window_ttft

    turns = pd.DataFrame({"t_arrive": [1.0, 5.0, 6.0, 9.0], "t_first_token": [2.0, 6.5, np.nan, np.nan],
                          "ttft_s": [1.0, 1.5, np.nan, np.nan]})
    got = window_ttft(turns, warmup_s=4.0, end_s=10.0)  # the first turn is before the window
    assert got["window_turns"] == 3 and got["window_waiting"] == 2
    assert got["window_ttft_s_max"] == pytest.approx(4.0)  # arrived at 6, still waiting at 10
    assert got["window_ttft_s_p50"] == pytest.approx(1.5)


def test_study_summary_takes_the_worst_seed_in_the_metric_s_bad_direction():
    import pandas as pd

    from dpsim.reproduce.whatif_studies import summarise

    table = pd.DataFrame({"status": ["ok"] * 4 + ["error"], "layout": ["1P7D"] * 5,
                          "policy.read_split": ["whole", "whole", "whole", "balanced", "whole"],
                          "snic_utilisation": [0.9, 0.8, 0.85, 0.95, 0.1], "jct_s": [1.0, 1.2, 1.1, 0.9, 9.0]})
    row = summarise(table, "split-reads").set_index("policy.read_split").loc["whole"]
    assert row.seeds == 3  # the failed point is left out
    assert (row.snic_utilisation_median, row.snic_utilisation_worst) == (0.85, 0.8)
    assert (row.jct_s_median, row.jct_s_worst) == (1.1, 1.2)


def test_study_runner_needs_a_known_study_label(tmp_path):
    from pathlib import Path

    from click.testing import CliRunner

    from dpsim.reproduce.whatif_studies import main

    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"base: {Path(DS27B).resolve()}\nset: [workload.agents=1]\nlabels: {{study: nope}}\n")
    result = CliRunner().invoke(main, [str(sweep), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "labels.study = ['nope']: expected one of split-reads" in result.output


def test_split_reads_with_the_dram_tier_are_refused_with_a_located_error():
    """The DRAM tier counts its hits per read side; a split read has two sides, so the pair is not
    modelled and must be refused, not run with wrong byte accounting."""
    with pytest.raises(ScenarioError, match=r"quickstart\.yaml: policy = .*read_split: balanced is not modelled "
                                            r"with hardware\.dram_tier\.enabled"):
        api.load_scenario("scenarios/quickstart.yaml", ["hardware.dram_tier.enabled=true", "policy.read_split=balanced"])
    for sets in (["hardware.dram_tier.enabled=true"], ["policy.read_split=balanced"]):
        api.load_scenario("scenarios/quickstart.yaml", sets)  # each alone is fine

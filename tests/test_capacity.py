"""SLO capacity search and P/D planning on miniature scenarios."""

import subprocess
import sys

import pytest

from dpsim import api
from dpsim.planning import capacity, plan

QUICK = "scenarios/quickstart.yaml"
# Storage-bound miniature (1P1D DS 27B, 8-turn agents, 25 Gbps storage NICs).
SMALL = ["workload.max_turns=8", "hardware.storage_nic.bandwidth=25Gbps"]
FAST = dict(window_s=10.0, aps_lo=2.0, aps_hi=16.0, tolerance=2.0)


@pytest.fixture(scope="module")
def caps():
    out = {}
    for system in ("basic", "dualpath"):
        sc = api.load_scenario(QUICK, SMALL + [f"policy.system={system}"])
        out[system] = capacity.find_capacity(sc, **FAST)
    return out


def test_dualpath_sustains_more_agents_than_basic_when_storage_bound(caps):
    assert 0 < caps["basic"].aps < caps["dualpath"].aps
    for r in caps.values():
        assert r.binding == "storage NIC"  # measured: the read NICs run near their ceiling
        assert r.utilisations["storage NIC"] > 0.8 > r.utilisations["compute NIC"]
        # Storage-bound: prefill passes wait for KV, so they occupy the engines longer than they compute.
        assert r.utilisations["prefill GPU occupied"] > r.utilisations["prefill GPU"]


def test_capacity_is_bracketed_by_a_pass_and_a_fail(caps):
    for r in caps.values():
        passing = [t["aps"] for t in r.trials if t["meets_slo"]]
        failing = [t["aps"] for t in r.trials if not t["meets_slo"]]
        assert max(passing) == r.aps
        above = min(a for a in failing if a > r.aps)
        assert above - r.aps <= FAST["tolerance"]
        assert all(t["stop_reason"].startswith("slo_break") for t in r.trials if t["aps"] >= above)
        assert set(r.to_dict()) >= {"aps", "binding", "trials", "utilisations"}


def test_more_storage_bandwidth_moves_the_binding_constraint():
    sc = api.load_scenario(QUICK, ["workload.max_turns=8", "hardware.storage_nic.bandwidth=3200Gbps",
                                   "policy.system=basic"])
    trial = capacity.trial(sc, 24.0, 4.0, 0.05, window_s=10.0)
    util = trial["utilisations"]
    assert util["storage NIC"] < 0.5
    assert capacity.binding_constraint(util) != "storage NIC"


def test_stop_rule_breaks_on_overload_and_settles_on_light_load():
    sc = api.load_scenario(QUICK, SMALL)
    heavy = capacity.trial(sc, 40.0, 4.0, 0.05, window_s=10.0)
    assert heavy["stop_reason"].startswith("slo_break") and not heavy["meets_slo"]
    light = capacity.trial(sc, 1.0, 4.0, 0.05, window_s=10.0, horizon_s=200.0)
    assert light["meets_slo"] and not light["stop_reason"].startswith("slo_break")


def test_bad_aps_bounds_are_one_line_errors():
    sc = api.load_scenario(QUICK)
    with pytest.raises(api.ScenarioError, match="aps_lo = 2 must be below aps_hi = 1"):
        capacity.find_capacity(sc, aps_lo=2.0, aps_hi=1.0)
    proc = subprocess.run([sys.executable, "-m", "dpsim.cli", "capacity", QUICK, "--aps-lo", "-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--aps-lo = -1.0" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dpsim.cli", "capacity", QUICK, "--slo-ttft", "fast"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--slo-ttft = 'fast'" in proc.stderr


def test_analytic_pd_range_matches_spec_section_3():
    sc = api.load_scenario(QUICK)
    lo, hi = plan.pd_range(sc)
    assert lo == pytest.approx(1 / 7) and hi == pytest.approx(7 / 2)
    # Two storage NICs per node narrow it: 2/6 <= P/D <= min(4/2, 6/4, (5 - 3)/2) = 1.
    two = api.load_scenario(QUICK, ["hardware.storage_nic.count=2"])
    assert plan.pd_range(two) == pytest.approx((1 / 3, 1.0))


def test_plan_cli_recommends_a_layout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dpsim.cli", "plan", QUICK, "--nodes", "3", "--target-aps", "4",
                           "--window", "10s", "--tolerance", "4", "--aps-lo", "4", "--aps-hi", "16", "--jobs", "2", "--out", str(tmp_path),
                           *[a for s in SMALL for a in ("--set", s)]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # 25 Gbps storage NICs are s = 1/16 of a compute NIC: 1/127 <= P/D <= 63.5.
    assert "analytic bottleneck-free P/D range (docs/architecture.md#paper-data-paths): 0.00787 .. 63.5" in proc.stdout
    assert "recommended: " in proc.stdout
    import json
    result = json.loads((tmp_path / "plan.json").read_text())
    assert {(r["prefill_nodes"], r["decode_nodes"]) for r in result["layouts"]} == {(1, 2), (2, 1)}
    assert result["recommended"]["capacity_aps"] >= 4


def _scan_every_request(rule, sim) -> tuple[list[float], list[float]]:
    """The stop rule's TTFT and TPOT samples by a scan of every request, newest first, back to the
    newest one that arrived over 10 windows before the check's window (included)."""
    now, lo = sim.env.now, sim.env.now - rule.window_s
    ttft, tpot = [], []
    for r in reversed(sim.requests):
        if r.t_first_token is not None:
            if r.t_first_token >= lo:
                ttft.append(r.t_first_token - r.t_arrive)
        else:
            ttft.append(now - r.t_arrive)
        if r.t_finish is not None and r.t_finish >= lo and r.t_second_token is not None \
                and r.turn.output_tokens > 2:
            tpot.append((r.t_finish - r.t_second_token) / (r.turn.output_tokens - 2))
        if r.t_arrive < lo - 10 * rule.window_s:
            break
    return ttft, tpot


def test_stop_rule_counts_what_a_scan_of_every_request_counts():
    """The rule keeps only the requests that may still count (`PaperStopRule.samples`); at every check
    its TTFT and TPOT samples must equal, in order and to the bit, those of a scan of every request.
    Overloaded (40 APS) with a 0.2 s window, requests wait longer than the 10-window look-back, so its
    edge (the newest request older than it is still counted) matters."""
    sc = api.load_scenario(QUICK, SMALL + ["workload.mode=online", "workload.aps=40", "workload.agents=400"])
    rule = capacity.paper_stop_rule(1e9, window_s=0.2)
    checks = []

    def checked(sim):
        checks.append((rule.samples(sim), _scan_every_request(rule, sim)))
        return None

    api.run(sc, stop_rule=checked, check_every_s=0.25)
    assert len(checks) > 100
    assert sum(len(ours[0]) + len(ours[1]) for ours, _ in checks) > 1000  # the checks compared samples
    assert all(ours == scanned for ours, scanned in checks)

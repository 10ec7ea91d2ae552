"""The wall-time estimate printed before a long run (dpsim.planning.run_estimate): the arithmetic from the
bench figures, the turn counts, and that run, compare, sweep and capacity print it when it exceeds
a minute and stay quiet when it does not."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from dpsim import api
from dpsim.cli import main
from dpsim.kernel.resources import net
from dpsim.planning import run_estimate

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "scenarios" / "quickstart.yaml")
COMPILED = str(bool(net.COMPILED))
BARE = 1e6  # bare SimPy events per second, fixed so the expected seconds are exact


def _row(model, system, ratio, workload="synthetic"):
    return {"slice": f"{model}-slice", "model": model, "system": system, "workload": workload, "compiled": COMPILED,
            "turns": "100", "runs": "3", "turns_per_bare_event_median": str(ratio),
            "turns_per_bare_event_worst": str(ratio)}


def _wall(ratio):
    rows = [_row("ds27b", s, ratio) for s in ("basic", "dualpath", "oracle")]
    return run_estimate.WallEstimate(rows, bare_events_per_s=BARE)


def test_estimate_is_turns_over_the_bench_rate_with_the_trace_figure_for_trace_replays():
    wall = run_estimate.WallEstimate([_row("ds27b", "basic", 0.004), _row("ds27b", "basic", 0.001, "trace")],
                              bare_events_per_s=BARE)
    synthetic = run_estimate.Job("ds27b", "basic", 40_000)
    trace = run_estimate.Job("ds27b", "basic", 40_000, trace=True)
    assert run_estimate.estimate_s([synthetic], wall) == pytest.approx(40_000 / 0.004 / BARE)  # 10 s
    assert run_estimate.estimate_s([synthetic, trace], wall) == pytest.approx(10.0 + 40.0)
    # another model: the system's median over models; a system without figures: no estimate
    assert run_estimate.estimate_s([run_estimate.Job("qwen32b", "basic", 40_000)], wall) == pytest.approx(10.0)
    assert run_estimate.estimate_s([run_estimate.Job("ds27b", "oracle", 40_000)], wall) is None
    # a trace replay with only synthetic figures falls back to them
    only_synthetic = run_estimate.WallEstimate([_row("ds27b", "basic", 0.004)], bare_events_per_s=BARE)
    assert run_estimate.estimate_s([trace], only_synthetic) == pytest.approx(10.0)
    assert run_estimate.estimate_s([synthetic], run_estimate.WallEstimate([])) is None


def test_notice_only_over_a_minute_and_names_turns_and_duration():
    wall = _wall(0.001)  # 1,000 turns per second
    assert run_estimate.notice([run_estimate.Job("ds27b", "basic", 59_000)], "this run", wall) is None
    line = run_estimate.notice([run_estimate.Job("ds27b", "basic", 30_000)] * 6, "this compare", wall)
    assert line.startswith("estimate: this compare simulates about 180,000 turns: ~3 min of one core")
    assert run_estimate.duration_text(90) == "~90 s" and run_estimate.duration_text(3 * 3600) == "~3.0 h"


def test_workload_turns_exact_when_small_and_sampled_when_large():
    sc = api.load_scenario(QUICK, ["workload.agents=40"])
    exact = sum(len(t.turns) for t in api.build_workload(sc))
    assert run_estimate.workload_turns(sc) == exact
    large = api.load_scenario(QUICK, ["workload.agents=1024", "workload.mal=32K"])
    assert run_estimate.workload_turns(large) == pytest.approx(
        sum(len(t.turns) for t in api.build_workload(large)), rel=0.05)


@pytest.fixture
def slow_bench(monkeypatch):
    """Bench figures of 10^-7 turns per bare event at 10^6 bare events/s: 0.1 turn per second, so
    tens of turns are estimated at minutes."""
    monkeypatch.setattr(run_estimate, "_WALL", [_wall(1e-7)])


SMALL = ["--set", "workload.agents=6", "--set", "workload.max_turns=12"]  # 72 turns: ~12 min at 0.1 turn/s


@pytest.mark.parametrize("args", [
    ["run", QUICK, *SMALL, "--no-plots"],
    ["compare", QUICK, *SMALL, "--policies", "basic,dualpath"],
])
def test_run_and_compare_print_the_estimate_before_a_long_run(slow_bench, tmp_path, args):
    result = CliRunner().invoke(main, args + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("estimate:")]
    turns = 72 * (2 if args[0] == "compare" else 1)
    assert lines == [lines[0]] and f"about {turns} turns" in lines[0] and "min of one core" in lines[0]


def test_no_estimate_when_the_run_is_short(monkeypatch, tmp_path):
    monkeypatch.setattr(run_estimate, "_WALL", [_wall(1.0)])  # 10^6 turns per second
    result = CliRunner().invoke(main, ["run", QUICK, *SMALL, "--no-plots", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and "estimate:" not in result.output


def test_sweep_prints_the_estimate_for_the_points_it_will_run(slow_bench, tmp_path):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(f"name: s\nbase: {QUICK}\nset: [workload.agents=6, workload.max_turns=12]\n"
                          f"grid:\n  policy.system: [basic, dualpath]\n")
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--jobs", "1", "--no-progress",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "estimate: this sweep (2 points) simulates about 144 turns" in result.stderr
    resumed = CliRunner().invoke(main, ["sweep", str(sweep_file), "--jobs", "1", "--no-progress", "--resume",
                                        "--out", str(tmp_path / "out")])
    assert resumed.exit_code == 0 and "estimate:" not in resumed.stderr  # nothing left to run


def test_capacity_prints_the_search_estimate(slow_bench, tmp_path):
    result = CliRunner().invoke(main, ["capacity", QUICK, "--set", "workload.max_turns=4", "--window", "10s",
                                       "--slo-ttft", "2s", "--aps-lo", "2", "--aps-hi", "8", "--tolerance", "2",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stderr.splitlines() if line.startswith("estimate:"))
    assert "this search (at least 4 trials of about" in line and "of one core" in line


def test_a_trace_resampled_above_its_sessions_is_named(tmp_path):
    """The shipped Claude Code sample has 9 sessions: 12 agents replay 3 copies, and the run says so."""
    trace = ["--set", f"workload.trace={ROOT / 'traces/native/claude_code_sample.dpsim.jsonl'}",
             "--set", "workload.max_turns=2", "--no-plots"]
    more = CliRunner().invoke(main, ["run", QUICK, *trace, "--set", "workload.agents=12", "--out", str(tmp_path / "a")])
    assert more.exit_code == 0, more.output
    assert "workload.agents = 12 is more than the trace's 9 sessions: 3 are seeded copies" in more.stderr
    once = CliRunner().invoke(main, ["compare", QUICK, *trace[:-1], "--set", "workload.agents=null",
                                     "--policies", "basic"])
    assert once.exit_code == 0, once.output
    assert "seeded copies" not in once.stderr and ", 9 agents" in once.output

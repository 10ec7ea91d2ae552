"""dpsim.tools.bench: the --paper slices, the figures file and the wall estimate `reproduce --list` prints."""

import signal

import pytest

from dpsim import api
from dpsim.kernel.resources import net
from dpsim.planning import run_estimate
from dpsim.tools import bench

COMPILED = str(bool(net.COMPILED))


def _row(slice_name, model, system, ratio, compiled=COMPILED):
    return {"slice": slice_name, "model": model, "system": system, "compiled": compiled, "turns": "100",
            "runs": "3", "turns_per_bare_event_median": str(ratio), "turns_per_bare_event_worst": str(ratio)}


def test_wall_estimate_uses_the_model_and_system_figure_and_the_bare_loop_now():
    wall = run_estimate.WallEstimate([_row("ds660b-2p4d-64k", "ds660b", "dualpath", 0.002),
                               _row("ds27b-1p1d-48k", "ds27b", "dualpath", 0.004),
                               _row("quickstart", "ds27b", "dualpath", 1.0),  # not a paper slice: ignored
                               _row("ds27b-1p1d-48k", "ds27b", "oracle", 9.0, compiled=str(not net.COMPILED))])
    assert wall and wall.bare_events_per_s > 0
    bare = wall.bare_events_per_s
    assert wall.seconds("ds660b", "dualpath", 1000) == pytest.approx(1000 / 0.002 / bare)
    assert wall.seconds("ds27b", "dualpath", 1000) == pytest.approx(1000 / 0.004 / bare)
    assert wall.seconds("qwen32b", "dualpath", 1000) == pytest.approx(1000 / 0.003 / bare)  # the system's median
    assert wall.seconds("ds27b", "oracle", 1000) is None  # only the other solver's figure
    assert not run_estimate.WallEstimate([])


def test_figures_file_round_trips(tmp_path):
    path = tmp_path / "bench.csv"
    assert run_estimate.read_figures(path) == []
    path.write_text(",".join(run_estimate.FIGURE_COLUMNS) + "\n" + ",".join(_row("s", "m", "basic", 0.01).values()) + "\n")
    assert run_estimate.read_figures(path)[0]["turns_per_bare_event_median"] == "0.01"


def test_paper_slices_load():
    """Every slice is shrunk: a synthetic set to few agents and turns, the trace replay to a few
    thousand turns of the shipped sample."""
    for path, sets in bench.PAPER_SLICES.values():
        scenario = api.load_scenario(path, sets)
        assert scenario.workload.agents and (scenario.workload.max_turns or scenario.workload.trace)
    trace = api.load_scenario(*bench.PAPER_SLICES["ds660b-2p4d-claude-code"])
    assert sum(len(t.turns) for t in api.build_workload(trace)) < 5000


def test_trace_replays_use_the_trace_figure():
    wall = run_estimate.WallEstimate([_row("ds660b-2p4d-64k", "ds660b", "basic", 0.004),
                               {**_row("ds660b-2p4d-claude-code", "ds660b", "basic", 0.001), "workload": "trace"}],
                              bare_events_per_s=1e6)
    assert wall.seconds("ds660b", "basic", 1000) == pytest.approx(0.25)
    assert wall.seconds("ds660b", "basic", 1000, trace=True) == pytest.approx(1.0)


def test_bench_prints_turns_per_bare_event(capsys):
    bench.main(["scenarios/quickstart.yaml", "--set", "workload.agents=4", "--set", "workload.max_turns=3",
                "--systems", "dualpath", "--repeat", "2"])
    out = capsys.readouterr().out
    assert "turns per bare event" in out and "dualpath" in out and "12 turns" in out


@pytest.mark.parametrize("argv", [["--systems", "bogus"], ["--repeat", "0"], ["--write", "x.csv"],
                                  ["--only", "quickstart"], ["--paper", "--only", "nope"],
                                  ["--census", "--census-every", "0"], ["--census", "--census-every", "nan"],
                                  ["--paper", "--census", "--write", "x.csv"], ["--census", "--profile"],
                                  ["--census", "--repeat", "3"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2


def test_path_groups_are_the_same_links_in_order_class_and_cap():
    import simpy

    from dpsim.kernel.resources.net import Network, TrafficClass

    network = Network(simpy.Environment())
    a, b = network.add_link("a", 1e9), network.add_link("b", 1e9)
    for path, cls, cap in [([a, b], TrafficClass.LOW, None), ([a, b], TrafficClass.LOW, None),
                           ([a, b], TrafficClass.LOW, None),  # three of one group
                           ([b, a], TrafficClass.LOW, None),  # the same links in another order
                           ([a, b], TrafficClass.LOW, 1e8),  # capped
                           ([a], TrafficClass.HIGH, None), ([a], TrafficClass.LOW, None)]:
        network.transfer(path, 1e9, cls, max_rate=cap)
    flows = bench.flows_in_flight(network)
    assert len(flows) == 7  # each once, though most sit on two links
    sizes = sorted(bench.path_groups(flows).values())
    assert sizes == [1, 1, 1, 1, 3]
    tally = bench.Census("t", "dualpath")
    tally.add(bench.path_groups(flows))
    tally.add(bench.path_groups([]))  # a sample with nothing in flight is not counted
    assert (tally.samples, tally.flows, tally.groups, tally.shared, tally.largest) == (1, 7, 5, 3, 3)


def test_flows_solved_counts_each_solve_s_flows():
    import simpy

    from dpsim.kernel.resources.net import Network

    env = simpy.Environment()
    network = Network(env)
    link = network.add_link("l", 10e9)
    network.transfer([link], 10e9)
    network.transfer([link], 20e9)  # the same instant: one solve of both
    env.run()
    # At 2 s the first leaves a full link: its survivor is re-rated alone.
    assert (network.recomputations, network.flows_solved) == (2, 3)
    assert env.now == pytest.approx(3.0)


def test_census_reads_a_run_without_changing_it(capsys):
    scenario = api.load_scenario("scenarios/quickstart.yaml", ["workload.agents=6", "workload.max_turns=3"])
    tally = bench.census("quickstart", scenario, "dualpath", every_s=0.05)
    plain = api.run(api.with_overrides(scenario, policy={"system": "dualpath"}), progress=False)
    assert tally.turns == plain.summary["turns"] == 18
    assert tally.solves == plain.run_info["rate_recomputations"] + plain.run_info["rate_split_fallbacks"]
    assert tally.flows_solved == plain.run_info["rate_flows_solved"] >= tally.solves > 0
    assert tally.samples > 0 and tally.groups <= tally.flows and tally.shared <= tally.flows
    bench.main(["scenarios/quickstart.yaml", "--set", "workload.agents=4", "--set", "workload.max_turns=3",
                "--systems", "dualpath", "--census", "--census-every", "0.1"])
    assert "flows per solve" in capsys.readouterr().out


def test_census_of_a_run_that_cannot_finish_its_turns_ends(monkeypatch):
    class Stuck(bench.Simulation):  # one turn more than the workload has: the run can never finish them all
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.turns_total += 1

    def hung(*_):
        raise TimeoutError("the census went on sampling a run with nothing left to happen")

    monkeypatch.setattr(bench, "Simulation", Stuck)
    scenario = api.load_scenario("scenarios/quickstart.yaml", ["workload.agents=2", "workload.max_turns=2"])
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)  # a failure, not a hang, if sampling never stops
    try:
        tally = bench.census("quickstart", scenario, "dualpath", every_s=0.5)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert tally.turns == 4  # and it returned: sampling stopped when nothing else was scheduled

"""The progress bar: turns, simulated time and an ETA on stderr, and no effect on results."""

import re

from click.testing import CliRunner

from dpsim import api
from dpsim.cli.app import main
from dpsim.kernel import progress
from dpsim.kernel.simulation import Simulation
from dpsim.metrics.results import run_simulation

QUICK = "scenarios/quickstart.yaml"


def test_progress_bar_shows_turns_and_simulated_time_without_changing_results(capsys):
    sc = api.load_scenario(QUICK, ["workload.agents=6", "workload.max_turns=4"])
    quiet = api.run(sc, progress=False)
    assert capsys.readouterr().err == ""
    shown = api.run(sc, progress=True, label="check")
    err = capsys.readouterr().err
    assert "check:" in err and f"/{shown.summary['turns']}" in err and "turn" in err
    assert shown.summary == quiet.summary


def test_progress_flag_on_the_command_line(tmp_path):
    args = ["run", QUICK, "--set", "workload.agents=4", "--set", "workload.max_turns=3", "--no-plots",
            "--out", str(tmp_path)]
    on = CliRunner().invoke(main, args + ["--progress"])
    off = CliRunner().invoke(main, args + ["--no-progress"])
    assert on.exit_code == off.exit_code == 0
    assert "turn" in on.stderr and off.stderr == ""


def test_bar_reports_the_simulated_clock(capsys):
    sc = api.load_scenario(QUICK, ["workload.agents=6", "workload.max_turns=4"])
    trajectories = api.build_workload(sc)
    sim = Simulation(sc, trajectories, progress=False)
    progress.attach(sim, "clock", refresh_s=0.0)  # redraw on every turn
    result = run_simulation(sim, api.arrival_times(sc, trajectories))
    clocks = [float(x.replace(",", "")) for x in re.findall(r"sim ([\d,.]+) s", capsys.readouterr().err)]
    assert clocks and clocks == sorted(clocks) and 0 < clocks[-1] <= result.summary["jct_s"] + 0.05  # one decimal shown

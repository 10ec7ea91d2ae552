"""dpsim.tools.bench: the --paper slices, the figures file and the wall estimate `reproduce --list` prints."""

import pytest

from dpsim import api
from dpsim.kernel.resources import net
from dpsim.tools import bench

COMPILED = str(bool(net.COMPILED))


def _row(slice_name, model, system, ratio, compiled=COMPILED):
    return {"slice": slice_name, "model": model, "system": system, "compiled": compiled, "turns": "100",
            "runs": "3", "turns_per_bare_event_median": str(ratio), "turns_per_bare_event_worst": str(ratio)}


def test_wall_estimate_uses_the_model_and_system_figure_and_the_bare_loop_now():
    wall = bench.WallEstimate([_row("ds660b-2p4d-64k", "ds660b", "dualpath", 0.002),
                               _row("ds27b-1p1d-48k", "ds27b", "dualpath", 0.004),
                               _row("quickstart", "ds27b", "dualpath", 1.0),  # not a paper slice: ignored
                               _row("ds27b-1p1d-48k", "ds27b", "oracle", 9.0, compiled=str(not net.COMPILED))])
    assert wall and wall.bare_events_per_s > 0
    bare = wall.bare_events_per_s
    assert wall.seconds("ds660b", "dualpath", 1000) == pytest.approx(1000 / 0.002 / bare)
    assert wall.seconds("ds27b", "dualpath", 1000) == pytest.approx(1000 / 0.004 / bare)
    assert wall.seconds("qwen32b", "dualpath", 1000) == pytest.approx(1000 / 0.003 / bare)  # the system's median
    assert wall.seconds("ds27b", "oracle", 1000) is None  # only the other solver's figure
    assert not bench.WallEstimate([])


def test_figures_file_round_trips(tmp_path):
    path = tmp_path / "bench.csv"
    assert bench.read_figures(path) == []
    path.write_text(",".join(bench.FIGURE_COLUMNS) + "\n" + ",".join(_row("s", "m", "basic", 0.01).values()) + "\n")
    assert bench.read_figures(path)[0]["turns_per_bare_event_median"] == "0.01"


def test_paper_slices_load():
    for path, sets in bench.PAPER_SLICES.values():
        scenario = api.load_scenario(path, sets)
        assert scenario.workload.max_turns and scenario.workload.agents


def test_bench_prints_turns_per_bare_event(capsys):
    bench.main(["scenarios/quickstart.yaml", "--set", "workload.agents=4", "--set", "workload.max_turns=3",
                "--systems", "dualpath", "--repeat", "2"])
    out = capsys.readouterr().out
    assert "turns per bare event" in out and "dualpath" in out and "12 turns" in out


@pytest.mark.parametrize("argv", [["--systems", "bogus"], ["--repeat", "0"], ["--write", "x.csv"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2

"""The reference-tool comparison (calibrate.bench): paired ratios, like-for-like arguments, clear
errors. The timed comparison itself is run by hand (docs/calibration.md, reference tools)."""

import pytest

from calibrate import bench


def test_report_gives_paired_ratios_with_median_and_worst():
    rep = bench._report("x", [100.0, 200.0, 100.0, 150.0, 120.0], [90.0, 150.0, 95.0, 150.0, 60.0])
    assert rep["paired_ratios"] == pytest.approx([0.9, 0.75, 0.95, 1.0, 0.5])
    assert rep["median_paired_ratio"] == pytest.approx(0.9) and rep["worst_paired_ratio"] == pytest.approx(0.5)
    assert rep["ratio_of_medians"] == pytest.approx(95.0 / 120.0)


def test_iperf3_gets_the_same_write_size_and_streams(monkeypatch):
    seen = []

    class Done:
        stdout = '{"end": {"sum_received": {"bits_per_second": 8e9}}}'
        stderr = ""

    monkeypatch.setattr(bench.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *a, **k: type("P", (), {"kill": lambda s: None,
                                                                                   "wait": lambda s: 0})())
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **k: seen.append(cmd) or Done())
    monkeypatch.setattr(bench.time, "sleep", lambda s: None)
    assert bench.iperf3_loopback(1.0, size=1 << 20, streams=2) == 1e9
    cmd = seen[0]
    assert cmd[cmd.index("-l") + 1] == str(1 << 20) and cmd[cmd.index("-P") + 1] == "2"


def test_missing_tool_or_bad_rounds_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert bench.main(["tcp", "--rounds", "1", "--seconds", "0.1"]) == 2
    assert capsys.readouterr().err.strip() == "bench: iperf3 is not installed (apt-get install iperf3)"
    assert bench.main(["tcp", "--rounds", "0"]) == 2
    assert "--rounds, --streams and --tcp-depth must be at least 1" in capsys.readouterr().err

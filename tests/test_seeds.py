"""--seeds N: every result as a mean with a 95 % Student t interval over seeds."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from dpsim.cli.app import main
from dpsim.planning import seeds

QUICK = "scenarios/quickstart.yaml"
TINY = ["--set", "workload.agents=6", "--set", "workload.max_turns=3"]


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in list(range(1, 45)) + [60, 120, 1000]:
        assert seeds.t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1.5e-3), df


def test_interval_of_a_known_sample():
    iv = seeds.interval([1.0, 2.0, 3.0, None])
    assert iv["n"] == 3 and iv["mean"] == 2.0
    assert iv["half_width"] == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert iv["low"] == pytest.approx(2.0 - iv["half_width"]) and iv["high"] == pytest.approx(2.0 + iv["half_width"])
    assert seeds.interval([5.0])["half_width"] is None and seeds.interval([])["mean"] is None
    with pytest.raises(ValueError, match="--seeds = 0"):
        seeds.seed_list(1, 0)


def test_run_with_three_seeds_reports_intervals(tmp_path):
    result = CliRunner().invoke(main, ["run", QUICK, *TINY, "--seeds", "3", "--no-plots", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "over 3 seeds (1, 2, 3; Student t over seeds, 95 %)" in result.output and "±" in result.output
    jcts = [json.loads((tmp_path / f"seed-{s}" / "summary.json").read_text())["jct_s"] for s in (1, 2, 3)]
    assert len(set(jcts)) > 1  # the seeds draw different workloads
    iv = json.loads((tmp_path / "seeds.json").read_text())["intervals"]["jct_s"]
    assert iv["mean"] == pytest.approx(sum(jcts) / 3)
    assert iv["low"] < min(jcts) <= max(jcts) < iv["high"]  # t(2) = 4.3: wider than the sample here
    assert f"{iv['mean']:.4g} ±" in result.output


def test_compare_with_seeds_pairs_the_speedups_by_seed(tmp_path):
    result = CliRunner().invoke(main, ["compare", QUICK, *TINY, "--policies", "basic,dualpath", "--seeds", "2",
                                       "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "speed-up dualpath vs basic (JCT, paired by seed):" in result.output
    doc = json.loads((tmp_path / "seeds.json").read_text())
    ratios = [json.loads((tmp_path / "basic" / f"seed-{s}" / "summary.json").read_text())["jct_s"] /
              json.loads((tmp_path / "dualpath" / f"seed-{s}" / "summary.json").read_text())["jct_s"] for s in (1, 2)]
    assert doc["intervals"]["speedup_vs_basic_jct"]["dualpath"]["mean"] == pytest.approx(sum(ratios) / 2)


def test_sweep_with_seeds_writes_one_interval_row_per_point(tmp_path):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(f"name: s\nbase: {Path(QUICK).resolve()}\nset: [workload.agents=6, workload.max_turns=3]\n"
                          "grid: {policy.system: [basic, dualpath]}\n")
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--seeds", "2", "-j", "1", "--no-progress",
                                       "--format", "csv", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    ci = pd.read_csv(tmp_path / "out" / "results_ci.csv")
    assert len(rows) == 4 and sorted(rows["run.seed"]) == [1, 1, 2, 2] and len(ci) == 2
    for r in ci.itertuples():
        mine = rows[rows.seed_of == r.seed_of]
        assert r.jct_s_mean == pytest.approx(mine.jct_s.mean()) and r.seeds_ok == 2


def test_capacity_with_seeds_gives_an_interval(tmp_path):
    args = ["capacity", QUICK, "--set", "workload.max_turns=8", "--set", "hardware.storage_nic.bandwidth=25Gbps",
            "--systems", "basic", "--window", "10s", "--aps-lo", "2", "--aps-hi", "8", "--tolerance", "6", "--quiet",
            "--seeds", "2",
            "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "capacity.json").read_text())["basic"]
    per_seed = [doc["by_seed"][s]["aps"] for s in ("1", "2")]
    assert doc["capacity_aps"]["mean"] == pytest.approx(sum(per_seed) / 2)
    assert "mean ±95 % over seeds 1, 2" in result.output

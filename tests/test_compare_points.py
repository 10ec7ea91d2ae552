"""`dpsim compare-points`: re-run rows against a table's rows, cell by cell."""

import pandas as pd
from click.testing import CliRunner

from dpsim.cli.app import main


def test_compare_points_finds_each_kind_of_change(tmp_path):
    """`compare-points`: identical re-run rows pass; a changed number, a failed point fail (exit 1) and
    name the row and column; a column blank in the old table is counted apart; --rtol loosens numbers."""
    run = CliRunner().invoke(main, ["reproduce", "--quick", "--only", "cache-compute", "--no-figures",
                                    "--out", str(tmp_path / "run")])
    assert run.exit_code == 0, run.output
    new_csv = tmp_path / "run" / "points.csv"
    table = pd.read_csv(new_csv, dtype={"key": str})

    def compare(old: pd.DataFrame, *options: str):
        old.to_csv(tmp_path / "old.csv", index=False)
        return CliRunner().invoke(main, ["compare-points", str(tmp_path / "old.csv"), str(new_csv), *options])

    same = compare(table)
    assert same.exit_code == 0, same.output
    assert f"{len(table)} identical" in same.output and "0 differ" in same.output

    changed = table.copy()
    changed.loc[3, "cache_compute_gb_per_pflop"] *= 1.001
    result = compare(changed)
    assert result.exit_code == 1
    assert f"{len(table) - 1} identical" in result.output and "1 differ" in result.output
    assert f"key {table.key[3]}: cache_compute_gb_per_pflop" in result.output and "(-0.0999 %)" in result.output
    assert compare(changed, "--rtol", "0.01").exit_code == 0

    older = table.copy()
    older["context_tokens"] = float("nan")  # a column this table did not have when its rows ran
    result = compare(older)
    assert result.exit_code == 0, result.output
    assert f"context_tokens ({len(table)} rows)" in result.output

    fewer = table.iloc[2:]  # points only in NEW are counted, not compared
    assert "2 ok points of" in compare(fewer).output

    failed = table.copy()
    failed.loc[0, "status"] = "failed"
    new_failed = tmp_path / "new_failed.csv"
    failed.to_csv(new_failed, index=False)
    result = CliRunner().invoke(main, ["compare-points", str(new_csv), str(new_failed)])
    assert result.exit_code == 1 and "failed in" in result.output


def test_compare_points_on_missing_or_bad_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    missing = CliRunner().invoke(main, ["compare-points", str(tmp_path / "nope.csv"), str(bad)])
    assert missing.exit_code == 2 and "nope.csv: file not found" in missing.output
    result = CliRunner().invoke(main, ["compare-points", str(bad), str(bad)])
    assert result.exit_code == 2 and "bad.csv: column 'experiment' missing" in result.output
    assert "Traceback" not in result.output


def test_validation_report_shows_the_fit_the_six_points_and_the_development_set(tmp_path):
    import pytest
    import yaml

    from dpsim.reproduce.report import development_rows, fit_rows, six_point_rows

    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"calibration": {"fits": {
        "g": {"point": "a", "published_jct_s": 100.0, "dpsim_jct_s": 110.0, "value": 0.5},
        "s": {"points": ["b", "c"], "published_jct_s": [200.0, 400.0], "dpsim_jct_s": [190.0, 400.0], "value": 0.7}}}}))
    rows = fit_rows(profile)
    assert [(r["point"], round(r["residual"], 3)) for r in rows] == [("a", 0.1), ("b", -0.05), ("c", 0.0)]
    assert fit_rows(tmp_path / "missing.yaml") == []

    def row(policy, mal, agents, jct, model="ds660b", layout="2P4D"):
        return {"experiment": f"offline-{model}", "model": model, "layout": layout, "policy": policy, "mal": mal,
                "agents": agents, "jct_s": jct, "status": "ok"}

    points = pd.DataFrame([row("oracle", 65536, 1024, 2706.0), row("dualpath", 65536, 1024, 2965.0 * 1.1),
                           row("basic", 65536, 1024, 5407.0 * 1.21), row("basic", 32768, 512, 1.0)])
    six = {(r["model"], r["policy"]): round(r["residual"], 3) for r in six_point_rows(points)}
    assert six == {("ds660b", "basic"): 0.21, ("ds660b", "oracle"): 0.0}
    dev = development_rows(points)  # the committed development set: only complete cells are compared
    assert [(r["mal"], r["agents"]) for r in dev] == [("64K", 1024)]
    assert dev[0]["speedup_dpsim"] / dev[0]["speedup_paper"] == pytest.approx(1.1)
    assert dev[0]["gap_dpsim"] / dev[0]["gap_paper"] == pytest.approx(1.1)


def _offline_rows(profile: str, jct: dict[tuple[int, str], float]) -> pd.DataFrame:
    rows = [{"experiment": "offline-ds660b", "model": "ds660b", "layout": "2P4D", "mal": 65536.0, "agents": agents,
             "aps": float("nan"), "scale": float("nan"), "policy": policy, "jct_s": value, "status": "ok",
             "profile": profile, "key": f"{profile}-{agents}-{policy}"}  # the key hashes the profile
            for (agents, policy), value in jct.items()]
    return pd.DataFrame(rows)


def test_compare_points_speedups_match_points_across_profiles(tmp_path):
    """--speedups pairs Basic with DualPath per point, matches OLD and NEW on the point's labels (not
    its key, which differs between profiles) and lists only the speed-ups that moved past the threshold."""
    old = _offline_rows("v1", {(1024, "basic"): 5400.0, (1024, "dualpath"): 2700.0, (1024, "oracle"): 2650.0,
                               (2048, "basic"): 10000.0, (2048, "dualpath"): 5000.0})
    new = _offline_rows("v3", {(1024, "basic"): 5600.0, (1024, "dualpath"): 2700.0, (1024, "oracle"): 2650.0,
                               (2048, "basic"): 10100.0, (2048, "dualpath"): 5000.0,
                               (4096, "basic"): 20000.0, (4096, "dualpath"): 9000.0})  # not in OLD: skipped
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(main, ["compare-points", str(tmp_path / "old.csv"), str(tmp_path / "new.csv"),
                                       "--speedups", "0.02"])
    assert result.exit_code == 0, result.output
    assert "2 points with Basic and DualPath" in result.output and "1 speed-ups moved by more than 2 %" in result.output
    # 2.0 -> 2.074 (+3.7 %) moved; 2.0 -> 2.02 (+1 %) did not
    assert "offline-ds660b model=ds660b layout=2P4D mal=64K agents=1024: speed-up 2 -> 2.07 (+3.7 %)" in result.output
    assert "DualPath/Oracle 1.019 -> 1.019" in result.output
    assert "agents=2048" not in result.output

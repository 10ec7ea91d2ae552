"""Sweeps: expansion, validation with located errors, parallel and Ray execution, kill and resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dpsim.planning import sweep
from dpsim.planning.sweep import Point, SweepError, expand, load_sweep, run_points

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "scenarios" / "quickstart.yaml")

# 2 systems x 2 MALs (grid) x 3 layouts (zip) = 12 points of a few tenths of a second each.
SWEEP_12 = f"""
name: twelve
base: {QUICK}
set: [workload.agents=6, workload.max_turns=4]
grid:
  policy.system: [basic, dualpath]
  workload.mal: [32K, 64K]
zip:
  cluster.prefill_nodes: [1, 2, 1]
  cluster.decode_nodes: [1, 1, 2]
labels: {{experiment: test}}
"""


def _write(tmp_path, text, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_expand_product_zip_list_and_fixed():
    pts = expand("b.yaml", grid={"a": [1, 2], "b": ["x", "y"]}, zip={"c": [1, 2], "d": [3, 4]},
                 points=[{"e": True}, {"e": False}], fixed=["f=9", "a=0"])
    assert len(pts) == 2 * 2 * 4
    first = dict(pts[0].overrides)
    # The grid value wins over the fixed one; booleans are written as a --set would carry them.
    assert first == {"f": "9", "a": "1", "e": "true", "c": "1", "d": "3", "b": "x"}
    assert {dict(p.overrides)["c"] + dict(p.overrides)["d"] for p in pts} == {"13", "24"}  # zipped, not crossed
    assert len({p.key for p in pts}) == len(pts)
    with pytest.raises(SweepError, match="equal lengths"):
        expand("b.yaml", zip={"c": [1, 2], "d": [3]})


def test_point_key_is_stable_and_depends_on_everything():
    p = Point("s.yaml", (("a", "1"),), (("exp", "x"),))
    assert p.key == Point("./s.yaml", (("a", "1"),), (("exp", "x"),)).key  # normalised path
    assert p.key != Point("s.yaml", (("a", "2"),), (("exp", "x"),)).key
    assert p.key != Point("s.yaml", (("a", "1"),), (("exp", "y"),)).key
    assert p.key != Point("t.yaml", (("a", "1"),), (("exp", "x"),)).key


@pytest.mark.parametrize("text, message", [
    ("base: {q}\ngird: {{a: [1]}}\n", "unknown key 'gird'; expected one of"),
    ("base: missing.yaml\n", "base = 'missing.yaml': file not found"),
    ("base: {q}\ngrid: {{workload.agents: [4, -1]}}\n", "grid.workload.agents = '-1'"),
    ("base: {q}\ngrid: {{workload.agnts: [4]}}\n", "grid.workload.agnts = '4': workload.agnts: unknown key"),
    ("base: {q}\nzip: {{workload.agents: [4, 5], workload.mal: [32K]}}\n", "equal lengths"),
    ("base: {q}\ngrid: {{workload.agents: 4}}\n", "grid.workload.agents = 4: expected a non-empty list"),
])
def test_bad_sweep_files_give_one_located_line(tmp_path, text, message):
    path = _write(tmp_path, text.format(q=QUICK))
    with pytest.raises(SweepError, match=message.replace("[", r"\[").replace("(", r"\(")) as info:
        load_sweep(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_cli_bad_sweep_exits_2_without_traceback(tmp_path):
    path = _write(tmp_path, f"base: {QUICK}\ngrid: {{cluster.prefill_nodes: [0]}}\n")
    proc = subprocess.run([sys.executable, "-m", "dpsim.cli", "sweep", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "grid.cluster.prefill_nodes = '0'" in proc.stderr


def _failing_task(point: Point) -> dict:
    if dict(point.overrides).get("workload.agents") == "3":
        raise ValueError("boom\nsecond line")
    return {"value": int(dict(point.overrides)["workload.agents"]) * 10}


def test_failing_point_records_error_and_sweep_goes_on(tmp_path):
    pts = expand(QUICK, grid={"workload.agents": [1, 2, 3, 4]})
    frame = run_points(pts, task=_failing_task, jobs=2, table=tmp_path / "t.csv", progress=False)
    assert list(frame.key) == [p.key for p in pts]  # order of points, whatever finished first
    assert list(frame.status) == ["ok", "ok", "error", "ok"]
    assert frame.error[2].startswith("ValueError: boom second line")  # one line
    assert frame.value.tolist()[:2] == [10, 20]
    table = pd.read_csv(tmp_path / "t.csv")
    assert len(table) == 4 and set(table.status) == {"ok", "error"}
    # Resume re-runs only the failed point.
    again = run_points(pts, task=_failing_task, jobs=1, table=tmp_path / "t.csv", resume=True, progress=False)
    ran_again = again[again.sweep_run != again.sweep_run[0]]
    assert list(ran_again.key) == [pts[2].key]


def test_twelve_point_sweep_parallel_matches_serial(tmp_path):
    points, meta = load_sweep(_write(tmp_path, SWEEP_12))
    assert len(points) == 12 and meta["name"] == "twelve"
    par = run_points(points, jobs=2, table=tmp_path / "par.parquet", progress=False)
    assert (par.status == "ok").all() and par.experiment.eq("test").all()
    on_disk = pd.read_parquet(tmp_path / "par.parquet")
    assert list(on_disk.key) == list(par.key)
    # Deterministic: the same points in one process give the same numbers.
    ser = run_points(points[:3], jobs=1, progress=False)
    assert ser.jct_s.tolist() == par.jct_s[:3].tolist()
    # The grid really varied the runs.
    assert par.groupby("workload.mal").jct_s.mean().nunique() == 2


def test_twelve_point_sweep_on_local_ray(tmp_path):
    pytest.importorskip("ray")
    path = _write(tmp_path, SWEEP_12)
    proc = subprocess.run([sys.executable, "-m", "dpsim.cli", "sweep", str(path), "--executor", "ray", "--jobs", "2",
                           "--out", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    points, _ = load_sweep(path)
    assert list(table.key) == [p.key for p in points] and (table.status == "ok").all()
    local = run_points(points[-2:], jobs=1, progress=False)
    assert table.jct_s[-2:].tolist() == local.jct_s.tolist()


def test_kill_midway_then_resume_runs_only_missing_points(tmp_path):
    # Each point must take well over the table's one-second rewrite interval, or a fast machine can
    # finish all twelve before the second rewrite and nothing is left to kill (32 agents x 16 turns,
    # ~0.2 s a point on an idle machine, was too short): ~1 s a point idle, a few s under load.
    path = _write(tmp_path, SWEEP_12.replace("workload.agents=6, workload.max_turns=4",
                                             "workload.agents=64, workload.max_turns=40"))
    out = tmp_path / "out"
    table = out / "results.csv"
    cmd = [sys.executable, "-m", "dpsim.cli", "sweep", str(path), "--jobs", "2", "--out", str(out),
           "--format", "csv", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done_before = pd.DataFrame()
        while time.monotonic() < deadline and proc.poll() is None:
            if table.exists():
                done_before = pd.read_csv(table)
                if 2 <= len(done_before) < 12:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed; make its points slower"
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: driver and its workers
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    killed = pd.read_csv(table)  # an atomic rewrite: never a torn file
    finished = set(killed.key[killed.status == "ok"])
    assert 2 <= len(finished) < 12
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(finished)} already done, running {12 - len(finished)}" in resumed.stderr
    final = pd.read_csv(table)
    assert len(final) == 12 and (final.status == "ok").all()
    first_run = final[final.key.isin(finished)].sweep_run.unique()
    second_run = final[~final.key.isin(finished)].sweep_run.unique()
    assert len(first_run) == 1 and len(second_run) == 1 and first_run[0] != second_run[0]
    # Rows finished before the kill were kept as they were, not re-run.
    before = killed.set_index("key").loc[sorted(finished), "wall_s"]
    assert final.set_index("key").loc[sorted(finished), "wall_s"].tolist() == before.tolist()


def test_flatten_names_nested_keys():
    assert sweep.flatten({"ttft_s": {"p50": 1.0}, "a": 2, "l": [1, 2]}) == {"ttft_s_p50": 1.0, "a": 2, "l": "[1, 2]"}


def test_out_in_the_sweep_file_is_relative_to_the_file(tmp_path):
    path = _write(tmp_path, SWEEP_12 + "out: results/here\n")
    _, meta = load_sweep(path)
    assert meta["out"] == str(path.parent / "results" / "here")

"""`python -m calibrate.experiments`: OUT safety, sessions as distributions, held-out sessions and
the exit status. The measurement is replaced by synthetic raw files whose truth is known (the real
run on the namespace test bed is the slow test at the end)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from calibrate import experiments, testbed
from calibrate.check import host_copy, profile_scenario, simulate_loader
from calibrate.errors import CalibrateError
from calibrate.fit import expected_tcp_goodput
from calibrate.measure import log_sizes
from calibrate.priority import simulate_flows
from calibrate.profile import load_profile
from calibrate.sessions import distribution, goal_of, link_spread, session_figures

pytest.importorskip("dpsim.kernel.resources.net", reason="closure needs dpsim.kernel.resources.net")


# ------------------------------------------------------------------------------------ OUT safety
def test_non_empty_out_is_refused_without_a_flag(tmp_path):
    out = tmp_path / "out"
    experiments.prepare_out(out, force=False, resume=False)  # missing: made
    (out / "links.jsonl").write_text("{}\n")
    with pytest.raises(CalibrateError, match="is not empty: pass --resume .* --force"):
        experiments.prepare_out(out, force=False, resume=False)
    experiments.prepare_out(out, force=False, resume=True)  # --resume continues in place
    assert (out / "links.jsonl").exists()


def test_force_moves_earlier_data_aside_and_deletes_nothing(tmp_path):
    out = tmp_path / "out"
    (out / "session-1").mkdir(parents=True)
    (out / "session-1" / "links.jsonl").write_text('{"kind": "meta"}\n')
    experiments.prepare_out(out, force=True, resume=False)
    (aside,) = out.glob("previous-*")
    assert (aside / "session-1" / "links.jsonl").read_text() == '{"kind": "meta"}\n'
    assert [p.name for p in out.iterdir()] == [aside.name]


def test_committed_data_is_never_overwritten_even_with_force(tmp_path, capsys):
    repo = tmp_path / "repo"
    out = repo / "scenarios" / "profiles" / "testbed-netns"
    out.mkdir(parents=True)
    (out / "loader.jsonl").write_text('{"kind": "meta"}\n')
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "data"], check=True)
    for force, resume in ((True, False), (False, True)):
        with pytest.raises(CalibrateError, match="committed to git .*loader.jsonl.*never overwrites"):
            experiments.prepare_out(out, force=force, resume=resume)
    assert experiments.main([str(out), "--force"]) == 2  # one line, no traceback, nothing moved
    assert "committed to git" in capsys.readouterr().err
    assert (out / "loader.jsonl").read_text() == '{"kind": "meta"}\n' and not list(out.glob("previous-*"))


# ------------------------------------------------------------------------------- synthetic sessions
ARGS = ["--storage-rate", "200Mbit/s", "--compute-rate", "800Mbit/s", "--boot", "30"]


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


def fake_measure(storage_error=0.0, slow_session=None):
    """A measure_session that writes synthetic raw files: link sweeps at the tc goodput (times 1 +
    storage_error on the storage links), loader runs as dpsim predicts them for the true rates (10 %
    slower in session `slow_session`), and priority runs as strict priority gives them."""
    bed = testbed.Testbed("200Mbit/s", None, "800Mbit/s", prefix="dpfake")
    calls = []

    def measure(d, a, blocks, prefix):
        calls.append(d.name)
        d.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(len(calls))
        recs = [{"kind": "meta", "host": "synthetic"}]
        for name, link in bed.links.items():
            beta = link.goodput * (1 + (storage_error if name.startswith("storage") else 0.0))
            for size in log_sizes("64KiB", "4MiB"):
                for rep in range(4):
                    t = (size / beta) * (1 + 0.005 * rng.standard_normal())
                    recs.append({"kind": "transport", "link": name, "op": "read", "size": size, "elapsed_s": t,
                                 "count": 1, "depth": 1, "concurrency": 1, "rep": rep, "bytes": size})
        write_jsonl(d / "links.jsonl", recs)
        truth = d / "truth.yaml"
        experiments.fit_profile([d / "links.jsonl"], truth, a, "truth")
        prof = load_profile(truth)
        scale = 1.1 if d.name == slow_session else 1.0
        loader = []
        for depth in experiments.LOADER_DEPTHS:
            eid = f"{d.name}-depth{depth}"
            cfg = {"block_size": 1 << 20, "layers": 8, "blocks_per_request": 4, "requests": 8, "paths": "both",
                   "depth": depth, "files": "blocks", "seed": 1, "model": None, "transport": "tcp"}
            reqs = [{"kind": "loader", "experiment": eid, "request": i, "path": "pe" if i % 2 == 0 else "de",
                     "bytes": 4 << 20} for i in range(8)]
            pred = simulate_loader(cfg, reqs, profile_scenario(prof), host_copy(prof))
            end = max(t for _, t in pred.values()) * scale
            loader += [{"kind": "experiment", "what": "loader", "experiment": eid, "config": cfg, "rep": 0}]
            loader += [{**r, "t_submit": pred[r["request"]][0] * scale, "t_done": pred[r["request"]][1] * scale}
                       for r in reqs]
            loader += [{"kind": "loader_total", "experiment": eid, "makespan_s": end, "bytes": 32 << 20,
                        "aggregate_bw": (32 << 20) / end}]
        write_jsonl(d / "loader.jsonl", loader)
        goodput = bed.links["compute"].goodput
        prio = []
        for k, start in enumerate(experiments.PRIORITY_STARTS_S):
            flows = [{"bytes": 16 << 20, "t_start": start, "priority": 0x10010},
                     {"bytes": 4 << 20, "t_start": 0.0, "priority": 0x10020}]
            alone = simulate_flows(flows[1:], goodput, 0.01)[0]
            ends = simulate_flows(flows, goodput, 0.01)
            prio.append({"kind": "priority", "group": f"alone{k}", "flow": 0, "priority": 0x10020,
                         "bytes": 4 << 20, "t_start": 0.0, "elapsed_s": alone})
            prio += [{"kind": "priority", "group": f"mixed{k}", "flow": i, "priority": f["priority"],
                      "bytes": f["bytes"], "t_start": f["t_start"], "elapsed_s": ends[i] - f["t_start"]}
                     for i, f in enumerate(flows)]
        write_jsonl(d / "priority.jsonl", prio)
        desc = bed.describe()
        desc["priority_link"] = {"goodput": goodput, "low_share": 0.01}
        return desc

    measure.calls = calls
    return measure


def test_sessions_report_median_and_worst_and_pass(tmp_path, monkeypatch, capsys):
    measure = fake_measure()
    monkeypatch.setattr(experiments, "measure_session", measure)
    out = tmp_path / "out"
    assert experiments.main([str(out), "--sessions", "3", *ARGS]) == 0
    assert measure.calls == ["session-1", "session-2", "session-3"]
    table = (out / "distribution.md").read_text()
    assert table in capsys.readouterr().out
    rows = {r["figure"]: r for r in json.loads((out / "distribution.json").read_text())["rows"]}
    for name in ("fit bandwidth storage_pe", "fit bandwidth compute", "closure loader both depth 1",
                 "closure loader both depth 2", "held-out closure loader both depth 2",
                 "priority slowdown, high starts at 0.02 s", "aggregate both depth 2"):
        assert rows[name]["sessions"] == 3 and rows[name]["passed"] is True, name
    assert abs(rows["fit bandwidth storage_pe"]["median"]) < 0.01
    assert "| closure loader both depth 1 | 3 |" in table and "between-session SD" in table
    # --resume: finished sessions are read back, not measured again; more sessions are added
    assert experiments.main([str(out), "--sessions", "4", "--resume", *ARGS]) == 0
    assert measure.calls == ["session-1", "session-2", "session-3", "session-4"]


def test_a_missed_goal_exits_non_zero_and_names_the_figure(tmp_path, monkeypatch, capsys):
    """One session in three whose loader runs 10 % slower than the model: the median still passes,
    the worst does not, so the run fails and says which figure."""
    monkeypatch.setattr(experiments, "measure_session", fake_measure(slow_session="session-2"))
    assert experiments.main([str(tmp_path / "out"), "--sessions", "3", *ARGS]) == 1
    err = capsys.readouterr().err
    assert "missed their goal: closure loader both depth 1; closure loader both depth 2" in err
    rows = {r["figure"]: r for r in json.loads((tmp_path / "out" / "distribution.json").read_text())["rows"]}
    r = rows["closure loader both depth 1"]
    assert abs(r["median"]) < 0.01 and r["worst"] == pytest.approx(1 / 1.1 - 1, rel=1e-3)


def test_link_fits_off_by_more_than_the_goal_fail(tmp_path, monkeypatch):
    """Storage sweeps 12 % faster than the tc goodput: the link-fit figures fail."""
    monkeypatch.setattr(experiments, "measure_session", fake_measure(storage_error=0.12))
    assert experiments.main([str(tmp_path / "out"), "--sessions", "2", *ARGS]) == 1
    rows = {r["figure"]: r for r in json.loads((tmp_path / "out" / "distribution.json").read_text())["rows"]}
    assert rows["fit bandwidth storage_pe"]["passed"] is False and rows["fit bandwidth compute"]["passed"] is True


def test_distribution_goals_and_between_session_spread():
    figs = [{"closure x": 0.01, "aggregate a": 0.95}, {"closure x": -0.07, "aggregate a": 0.91},
            {"closure x": 0.02, "aggregate a": 0.97}]
    rows = {r["figure"]: r for r in distribution(figs)}
    assert rows["closure x"]["median"] == pytest.approx(0.01) and rows["closure x"]["worst"] == pytest.approx(-0.07)
    assert rows["closure x"]["passed"] is True  # worst 7 % < 8 %
    assert rows["aggregate a"]["worst"] == pytest.approx(0.91) and rows["aggregate a"]["passed"] is True
    assert goal_of("held-out closure loader").median_limit == 0.05 and goal_of("fit latency x [us]").kind == "report"
    fits = [{"fits": {"l": {"bandwidth_Bps": bw, "bandwidth_ci95_Bps": [bw * 0.99, bw * 1.01]}}} for bw in (99, 101)]
    (spread,) = link_spread(fits)
    assert spread["between_session_rel_sd"] == pytest.approx(np.std([99, 101], ddof=1) / 100)
    assert spread["within_session_ci_half_rel"] == pytest.approx(0.01)


def test_session_figures_name_every_figure():
    bed = testbed.Testbed("200Mbit/s", None, "800Mbit/s", prefix="dpfig")
    g = expected_tcp_goodput(25e6)
    summary = {"testbed": bed.describe(),
               "fits": {"storage_pe": {"bandwidth_Bps": g * 1.02, "latency_s": 1e-4}},
               "closure": {"experiments": [{"kind": "loader", "what": "loader both depth 1", "rel_err": -0.03,
                                            "naive_rel_err": -0.1}]},
               "loader": [{"aggregate_bw": 2 * g * 0.9}], "loader_configs": [{"paths": "both", "depth": 1}],
               "priority": {"runs": [{"high_start_s": 0.0, "slowdown_rel_err": 0.004}]}}
    figs = session_figures(summary)
    assert figs["fit bandwidth storage_pe"] == pytest.approx(0.02)
    assert figs["fit latency storage_pe [us]"] == pytest.approx(100)
    assert figs["closure loader both depth 1"] == -0.03 and figs["naive loader both depth 1"] == -0.1
    assert figs["aggregate both depth 1"] == pytest.approx(0.9)
    assert figs["priority slowdown, high starts at 0 s"] == 0.004


@pytest.mark.slow
@pytest.mark.netns
def test_sessions_on_the_namespace_test_bed(require_netns, tmp_path):
    """The real thing, tiny (about 30 s on 2 loaded cores): 2 sessions, 2 repetitions per size,
    8 loader requests. The exit status says whether every goal was met; the figures are not
    asserted (a tiny run on a loaded host misses some, see docs/calibration.md)."""
    out = tmp_path / "out"
    # sizes past twice the compute link's 400 kB token bucket, for its bandwidth
    rc = experiments.main([str(out), "--sessions", "2", "--requests", "8", "--reps", "2", "--sizes", "256KiB..2MiB",
                           "--boot", "30"])
    rows = json.loads((out / "distribution.json").read_text())["rows"]
    assert rc == (1 if any(r["passed"] is False for r in rows) else 0)
    assert all(r["sessions"] == 2 for r in rows)
    assert {"closure loader both depth 1", "held-out closure loader both depth 2", "fit bandwidth compute",
            "priority slowdown, high starts at 0 s"} <= {r["figure"] for r in rows}
    assert (out / "session-2" / "summary.json").exists() and (out / "profile.yaml").exists()

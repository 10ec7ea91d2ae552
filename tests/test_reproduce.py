"""`dpsim reproduce`: experiment files, the quick set end to end, determinism, the validation table."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from dpsim.cli.app import main
from dpsim.planning.plan import pd_range
from dpsim.reproduce import build_points, load_experiments
from dpsim.reproduce.experiments import POINT_COLUMNS, load_point_scenario
from dpsim.reproduce.report import load_published, validation_rows
from dpsim.scenario.models import ALL_MODELS

EXPERIMENTS = "scenarios/paper/experiments"
GOLDEN = Path(__file__).parent / "golden"


def regenerate_golden(out: Path) -> None:
    """Write the golden files from a quick-set run folder: only after a change that is meant to change
    results, and say so in the commit (`python -c "from tests.test_reproduce import regenerate_golden;
    regenerate_golden(Path('runs/quick'))"` after `dpsim reproduce --quick --out runs/quick`)."""
    shutil.copyfile(out / "points.csv", GOLDEN / "quick_points.csv")
    (GOLDEN / "quick_validation_rows.md").write_text(_table_rows(out / "validation.md"))


def _table_rows(validation_md: Path) -> str:
    """The validation table's rows (the headline numbers), without the prose around them."""
    return "".join(line for line in validation_md.read_text().splitlines(keepends=True) if line.startswith("|"))


def test_quick_set_end_to_end_deterministic_and_reported(tmp_path):
    """The whole quick set through the CLI, as CI runs it (about a minute on 2 cores); one test so
    that xdist runs it once."""
    out = tmp_path / "quick"
    result = CliRunner().invoke(main, ["reproduce", "--quick", "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "points.csv")
    assert list(table.columns[:len(POINT_COLUMNS)]) == POINT_COLUMNS
    assert (table.status == "ok").all(), table[table.status != "ok"][["experiment", "error"]]
    names = {e.name for e in load_experiments(EXPERIMENTS)}
    assert set(table.experiment) == names
    assert {p.stem for p in (out / "figures").glob("*.png")} == names
    offline = table[table.experiment == "offline-ds660b"]
    assert set(offline.policy) == {"basic", "dualpath", "oracle"} and offline.jct_s.gt(0).all()
    assert table[table.experiment.str.startswith("capacity")].capacity_aps.gt(0).all()
    steady = table[table.experiment.str.startswith("online")]  # the paper's stop rule, last window's latencies
    assert steady.ttft_s_mean.gt(0).all() and steady.tpot_s_mean.gt(0).all()
    assert steady.stop_reason.str.match(r"horizon|steady|slo_break").all()
    assert steady.window_end_s.le(60).all()  # quick horizon
    assert "| claim | published | dpsim | error |" in (out / "validation.md").read_text()
    # Results do not change unless a change means them to: byte-identical to the committed golden files.
    assert (out / "points.csv").read_bytes() == (GOLDEN / "quick_points.csv").read_bytes(), \
        "the quick set's points.csv differs from tests/golden/quick_points.csv"
    assert _table_rows(out / "validation.md") == (GOLDEN / "quick_validation_rows.md").read_text(), \
        "the validation table's rows differ from tests/golden/quick_validation_rows.md"

    # The same seed gives the same rows (here a subset, in one process instead of two).
    subset = "offline-ds27b,load-balance,cache-compute"
    again = CliRunner().invoke(main, ["reproduce", "--quick", "--jobs", "1", "--no-figures", "--only", subset,
                                      "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    second = pd.read_csv(tmp_path / "again" / "points.csv")
    first = table[table.experiment.isin(second.experiment)].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[second.columns], second)

    report = CliRunner().invoke(main, ["validation-report", str(out / "points.csv")])
    assert report.exit_code == 0, report.output
    items, _ = load_published("scenarios/paper/published.yaml")
    assert all(item.claim in report.output for item in items)
    assert "Quick mode" in report.output

    # Runs of parts of the set merge into one table and one set of figures; a point run twice counts once.
    merged = CliRunner().invoke(main, ["validation-report", str(out / "points.csv"), str(tmp_path / "again" / "points.csv"),
                                       "--merged", str(tmp_path / "merged.csv"), "--figures", str(tmp_path / "figs")])
    assert merged.exit_code == 0, merged.output
    assert len(pd.read_csv(tmp_path / "merged.csv")) == len(table)
    assert {p.stem for p in (tmp_path / "figs").glob("*.png")} == names


def test_another_seed_gives_other_points(tmp_path):
    runs = {}
    for seed in (1, 5):
        result = CliRunner().invoke(main, ["reproduce", "--quick", "--jobs", "1", "--no-figures", "--seed", str(seed),
                                           "--only", "pd-ratio", "--out", str(tmp_path / str(seed))])
        assert result.exit_code == 0, result.output
        runs[seed] = pd.read_csv(tmp_path / str(seed) / "points.csv").jct_s
    assert not runs[1].equals(runs[5])


def test_every_full_point_loads_and_counts_are_as_documented():
    experiments = load_experiments(EXPERIMENTS)
    full = build_points(experiments, quick=False)
    assert len(full) == 268  # 244 + the P/D-ratio figure's 512-agent points (18) + the TTFT breakdown (6)
    scale = [p for p in full if dict(p.labels)["experiment"] == "scale-offline"]
    big = load_point_scenario(scale[-1])
    assert (big.cluster.prefill_nodes, big.cluster.decode_nodes, big.workload.agents) == (48, 96, 49152)


def test_where_keeps_the_grid_subset_and_points_without_the_key():
    experiments = load_experiments(EXPERIMENTS, ["offline-ds660b", "capacity-ds660b"])
    kept = build_points(experiments, quick=False, check=False,
                        where={"workload.agents": "1024", "workload.mal": "64K"})
    by_exp = {}
    for p in kept:
        by_exp.setdefault(dict(p.labels)["experiment"], []).append(dict(p.overrides))
    assert len(by_exp["offline-ds660b"]) == 3  # one grid cell x basic, dualpath, oracle
    assert all(o["workload.agents"] == "1024" and o["workload.mal"] == "64K" for o in by_exp["offline-ds660b"])
    assert len(by_exp["capacity-ds660b"]) == 2  # sets no agent count: kept
    result = CliRunner().invoke(main, ["reproduce", "--list", "--where", "agents"])
    assert result.exit_code == 2 and "--where 'agents': expected KEY=VALUE" in result.output


def test_list_counts_a_capacity_search_at_its_fewest_trials():
    """`--list` counts each capacity point as the search's trials x the turns of one trial
    (dpsim.planning.capacity.search_size, as `dpsim plan` estimates it), not as nothing."""
    from dpsim.planning.capacity import search_size
    from dpsim.reproduce.tasks import estimate_turns

    points = build_points(load_experiments(EXPERIMENTS, ["capacity-ds27b"]), quick=True, check=False)
    assert len(points) == 2  # basic and dualpath
    for point in points:
        options = json.loads(dict(point.labels)["options"])
        trials, turns = search_size(load_point_scenario(point), aps_lo=options["aps_lo"], aps_hi=options["aps_hi"],
                                    tolerance=options["tolerance"], window_s=options["window_s"],
                                    horizon_s=options["horizon_s"])
        assert trials >= 3 and turns > 0
        assert estimate_turns(point) == trials * turns
    result = CliRunner().invoke(main, ["reproduce", "--quick", "--only", "capacity-ds27b", "--list"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("capacity-ds27b"))
    assert "turns" in line and "closed form" not in line


def test_profile_applies_to_every_point_below_the_overrides(tmp_path):
    profile = tmp_path / "profile.yaml"
    profile.write_text("hardware:\n  storage: {read_efficiency: 0.5}\n  host: {dram_buffer: 10GB}\n")
    exp = load_experiments(EXPERIMENTS, ["offline-qwen32b"])
    point = build_points(exp, quick=True, profile=str(profile))[0]
    sc = load_point_scenario(point)
    assert sc.hardware.storage.read_efficiency == 0.5  # profile beats the preset
    assert sc.hardware.host.dram_buffer == 10e9  # and the scenario (dpsim.scenario.config's profile precedence)
    assert sc.workload.max_turns == 10  # the experiment's overrides beat the profile


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


GOOD = """name: NAME
title: t
base: BASE
systems: [basic]
grid: {workload.agents: [4]}
quick: {note: n}
"""


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("title: t", "titel: t"), "titel: unknown key; expected one of"),
    (GOOD.replace("quick: {note: n}", ""), "quick: required field is missing"),
    (GOOD.replace("workload.agents", "workload.agnts"), "unknown key 'agnts' in workload"),
    (GOOD.replace("[4]", "[-4]"), "workload.agents = -4"),
    (GOOD.replace("task: run", "") + "task: simulate\n", "task = 'simulate'"),
    (GOOD + "zip: {cluster.prefill_nodes: [1, 2], cluster.decode_nodes: [1]}\n", "zip: lists of unequal lengths"),
    (GOOD.replace("BASE", "nowhere.yaml"), "base = 'nowhere.yaml': file not found"),
    (GOOD + "task: steady\n", "options.horizon_s = None: task steady needs a positive horizon"),
    ("name: [unclosed\n", "is not valid YAML"),
])
def test_bad_experiment_file_is_one_located_line_and_exit_2(tmp_path, text, message):
    folder = tmp_path / "experiments"
    base = Path("scenarios/quickstart.yaml").resolve()
    path = _write(folder, "bad", text.replace("NAME", "bad").replace("BASE", str(base)))
    result = CliRunner().invoke(main, ["reproduce", "--quick", "--experiments", str(folder), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2
    assert str(path) in result.output and message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_only_name_and_name_mismatch(tmp_path):
    result = CliRunner().invoke(main, ["reproduce", "--quick", "--only", "nope", "--list"])
    assert result.exit_code == 2 and "--only 'nope': no such experiment" in result.output
    folder = tmp_path / "e"
    _write(folder, "file", GOOD.replace("NAME", "other").replace("BASE", str(Path("scenarios/quickstart.yaml").resolve())))
    result = CliRunner().invoke(main, ["reproduce", "--experiments", str(folder), "--list"])
    assert result.exit_code == 2 and "name = 'other': expected the file name" in result.output


def test_bad_published_file_is_located(tmp_path):
    bad = tmp_path / "published.yaml"
    shutil.copy("scenarios/paper/published.yaml", bad)
    bad.write_text(bad.read_text().replace("metric: ratio", "metric: quotient", 1))
    result = CliRunner().invoke(main, ["validation-report", "scenarios/paper/published.yaml", "--published", str(bad)])
    assert result.exit_code == 2 and "metric = 'quotient': expected one of" in result.output
    bad.write_text(Path("scenarios/paper/published.yaml").read_text().replace("    along: agents\n", "", 1))
    result = CliRunner().invoke(main, ["validation-report", "scenarios/paper/published.yaml", "--published", str(bad)])
    assert result.exit_code == 2 and "along = None: metric trend needs the column" in result.output
    bad.write_text("items:\n  - id: x\n     claim: y\n")  # mis-indented: not YAML
    result = CliRunner().invoke(main, ["validation-report", "scenarios/paper/published.yaml", "--published", str(bad)])
    assert result.exit_code == 2 and f"{bad}: line 3 is not valid YAML" in result.output


def test_validation_metrics_on_a_hand_made_table():
    points = pd.DataFrame([
        {"experiment": "offline-ds660b", "policy": "basic", "mal": 65536, "agents": 8, "jct_s": 20.0, "status": "ok"},
        {"experiment": "offline-ds660b", "policy": "dualpath", "mal": 65536, "agents": 8, "jct_s": 10.0, "status": "ok"},
        {"experiment": "offline-ds660b", "policy": "oracle", "mal": 65536, "agents": 8, "jct_s": 9.0, "status": "ok"},
        {"experiment": "offline-ds660b", "policy": "basic", "mal": 32768, "agents": 8, "jct_s": 12.0, "status": "ok"},
        {"experiment": "offline-ds660b", "policy": "dualpath", "mal": 32768, "agents": 8, "jct_s": 10.0, "status": "ok"},
    ])
    items, causes = load_published("scenarios/paper/published.yaml")
    rows = {r["id"]: r for r in validation_rows(points, items, causes)}
    assert rows["offline-ds660b-speedup-max"]["dpsim"] == pytest.approx(2.0)
    assert rows["offline-ds660b-oracle-gap-max"]["dpsim"] == pytest.approx(10 / 9)
    assert rows["offline-ds660b-speedup-paper-point"]["dpsim"] is None  # no 4096-agent rows
    points.loc[points.mal == 65536, "agents"] = 4096
    assert {r["id"]: r for r in validation_rows(points, items, causes)}[
        "offline-ds660b-speedup-paper-point"]["dpsim"] == pytest.approx(2.0)
    # One side of a scale comparison alone is no comparison (not "ratio 1.0"), and the row says why.
    lone = pd.concat([points, pd.DataFrame([{"experiment": "scale-offline", "policy": "dualpath", "scale": 1,
                                             "mal": 49152, "jct_s": 3000.0, "status": "ok"}])], ignore_index=True)
    scale = {r["id"]: r for r in validation_rows(lone, items, causes)}
    assert scale["scale-offline-jct-ratio"]["dpsim"] is None
    assert "no matching points" in scale["scale-offline-jct-ratio"]["cause"]
    # an item that records why it has not run (published.yaml `not_run`) says that instead
    noted = [dataclasses.replace(i, not_run="too long for one session") if i.id == "scale-offline-jct-ratio" else i
             for i in items]
    assert {r["id"]: r for r in validation_rows(lone, noted, causes)}["scale-offline-jct-ratio"][
        "cause"] == "not run: too long for one session"
    assert scale["scale-offline-jct-2p4d"]["dpsim"] == pytest.approx(3000.0)
    assert rows["offline-ds27b-speedup-max"]["dpsim"] is None
    assert "no matching points" in rows["offline-ds27b-speedup-max"]["cause"]


def test_trend_metric_counts_the_steps_where_the_speed_up_grows():
    def grid(speedups):  # {(mal, agents): basic/dualpath}
        rows = []
        for (mal, agents), speedup in speedups.items():
            rows += [{"experiment": "offline-ds27b", "policy": "basic", "mal": mal, "agents": agents,
                      "jct_s": 100.0 * speedup, "status": "ok"},
                     {"experiment": "offline-ds27b", "policy": "dualpath", "mal": mal, "agents": agents,
                      "jct_s": 100.0, "status": "ok"}]
        return pd.DataFrame(rows)

    items, causes = load_published("scenarios/paper/published.yaml")

    def values(speedups):
        rows = {r["id"]: r["dpsim"] for r in validation_rows(grid(speedups), items, causes)}
        return rows["offline-ds27b-speedup-grows-with-agents"], rows["offline-ds27b-speedup-grows-with-mal"]

    # Rows out of order in the table: the steps are taken in ascending agents / MAL.
    assert values({(32768, 1024): 1.5, (32768, 512): 1.2, (49152, 512): 1.4, (49152, 1024): 1.9}) == (1.0, 1.0)
    # At 48K the speed-up falls from 512 to 1024 agents: one of two agent steps grows; and at 1024
    # agents it falls from 32K to 48K: one of two MAL steps grows.
    assert values({(32768, 512): 1.2, (32768, 1024): 1.5, (49152, 512): 1.6, (49152, 1024): 1.4}) == (0.5, 0.5)
    assert values({(32768, 512): 1.2}) == (None, None)  # one point: no step to judge


def test_cache_compute_of_the_added_models():
    # GPT-OSS-120B: 18 full-attention layers x 8 KV heads x 64 x 2 (K, V) x 2 B = 36 KiB/token;
    # Qwen3-235B-A22B: 94 x 4 x 128 x 2 x 2 B = 188 KiB/token; active parameters ~5.1 B and ~22 B.
    gpt, qwen3 = ALL_MODELS["gpt-oss-120b"], ALL_MODELS["qwen3-235b-a22b"]
    assert gpt.kv_bytes_per_token == 36 * 1024
    assert qwen3.kv_bytes_per_token == 188 * 1024
    assert (gpt.dense_flops_per_token + gpt.expert_flops_per_token) / 2 == pytest.approx(5.1e9, rel=0.03)
    assert (qwen3.dense_flops_per_token + qwen3.expert_flops_per_token) / 2 == pytest.approx(22e9, rel=0.03)
    # Ordering the paper's argument rests on: dense GQA >> sparse MLA >> dense MLA.
    ratio = {m: ALL_MODELS[m].cache_compute_ratio_gb_per_pflop(32721, 429) for m in ALL_MODELS}
    assert ratio["qwen32b"] > ratio["gpt-oss-120b"] > ratio["ds660b"] > ratio["deepseek-v3"]


def test_pd_bound_experiment_prints_the_paper_range():
    exp = load_experiments(EXPERIMENTS, ["pd-bound"])
    sc = load_point_scenario(build_points(exp)[0])
    assert pd_range(sc) == pytest.approx((1 / 7, 3.5))


def test_cache_runs_identical_simulations_once_and_reuses_them(tmp_path):
    args = ["reproduce", "--quick", "--only", "offline-ds660b,ablation", "--where", "workload.agents=16",
            "--where", "workload.mal=64K", "--no-figures", "--jobs", "1", "--cache", str(tmp_path / "cache")]
    first = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    points = pd.read_csv(tmp_path / "a" / "points.csv")
    assert len(points) == 7  # offline: basic, dualpath, oracle; ablation: 4 rungs
    # Ablation's basic and +scheduler are the offline grid's basic and dualpath: 5 simulations.
    assert len(list((tmp_path / "cache").glob("*.json"))) == 5
    basic = points[points.policy == "basic"].jct_s.tolist()
    assert len(basic) == 2 and basic[0] == basic[1]
    again = CliRunner().invoke(main, args + ["--out", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "a" / "points.csv").read_bytes() == (tmp_path / "b" / "points.csv").read_bytes()
    # --cached-only assembles what has been run: a wider set (both MALs) yields only the cached points.
    wider = ["reproduce", "--quick", "--only", "offline-ds660b,ablation", "--where", "workload.agents=16",
             "--no-figures", "--jobs", "1", "--cache", str(tmp_path / "cache")]
    assembled = CliRunner().invoke(main, wider + ["--cached-only", "--out", str(tmp_path / "c")])
    assert assembled.exit_code == 0, assembled.output
    assert (pd.read_csv(tmp_path / "c" / "points.csv").jct_s.tolist() == points.jct_s.tolist())
    assert len(list((tmp_path / "cache").glob("*.json"))) == 5  # nothing new was simulated
    refused = CliRunner().invoke(main, ["reproduce", "--quick", "--cached-only", "--only", "ablation"])
    assert refused.exit_code == 2 and "--cached-only needs --cache" in refused.output


def test_identical_simulations_run_once_without_cache_in_point_order(tmp_path, monkeypatch):
    """Without --cache as with it, a point that simulates what an earlier one does reads that
    simulation's numbers (`run_once`): ablation's basic and +scheduler rungs are the offline grid's
    basic and dualpath points. The rows keep the points' order and match a cached set byte for byte;
    --list counts those two once."""
    from dpsim.reproduce import tasks

    simulated = []
    real = tasks._simulate

    def counting(scenario, *args, **kwargs):
        simulated.append(scenario.policy.system)
        return real(scenario, *args, **kwargs)

    monkeypatch.setattr(tasks, "_simulate", counting)
    where = {"workload.agents": "16", "workload.mal": "64K"}
    subset = ["--quick", "--only", "offline-ds660b,ablation", "--where", "workload.agents=16", "--where",
              "workload.mal=64K"]
    args = ["reproduce", *subset, "--no-figures", "--jobs", "1"]
    fresh = CliRunner().invoke(main, args + ["--out", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0, fresh.output
    assert len(simulated) == 5  # 7 points
    table = pd.read_csv(tmp_path / "fresh" / "points.csv")
    points = build_points(load_experiments(EXPERIMENTS, ["offline-ds660b", "ablation"]), quick=True, where=where)
    assert list(zip(table.experiment, table.policy)) == [
        (dict(p.labels)["experiment"], dict(p.labels)["policy"]) for p in points]
    timing = pd.read_csv(tmp_path / "fresh" / "timing.csv")
    assert list(timing.key.astype(str)) == [p.key for p in points]
    cached = CliRunner().invoke(main, args + ["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "cached")])
    assert cached.exit_code == 0, cached.output
    assert len(simulated) == 10
    assert (tmp_path / "fresh" / "points.csv").read_bytes() == (tmp_path / "cached" / "points.csv").read_bytes()
    listed = CliRunner().invoke(main, ["reproduce", "--list", *subset])
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line for line in listed.output.splitlines()}
    assert lines["offline-ds660b"].endswith("(2 run earlier)"), lines  # ablation's rungs come first
    assert "run earlier" not in lines["ablation"]


def test_list_estimates_each_points_size():
    """--list prints simulated turns per experiment: exact when the sample covers all agents, within a
    few per cent when it is scaled up from SAMPLE_AGENTS."""
    from dpsim import api
    from dpsim.reproduce.tasks import _labels, _scenario, estimate_turns

    def exact(point):
        return sum(len(t.turns) for t in api.build_workload(_scenario(point, _labels(point)["options"])))

    quick = build_points(load_experiments(EXPERIMENTS, ["offline-ds27b"]), quick=True)[0]
    assert estimate_turns(quick) == exact(quick)
    full = build_points(load_experiments(EXPERIMENTS, ["offline-ds27b"]), where={"workload.agents": "1024",
                                                                                  "workload.mal": "32K"})[0]
    assert estimate_turns(full) == pytest.approx(exact(full), rel=0.05)
    listed = CliRunner().invoke(main, ["reproduce", "--list", "--quick", "--only", "offline-ds27b,cache-compute"])
    assert listed.exit_code == 0, listed.output
    assert "k turns" in listed.output and "closed form" in listed.output and listed.output.splitlines()[-1].startswith("total")


def test_merge_keeps_the_last_row_of_a_point_and_full_size_over_quick():
    from dpsim.cli.reproduce import merge_points

    quick = pd.DataFrame({"experiment": ["x", "x", "y"], "key": ["1", "2", "3"], "quick": [True] * 3, "jct_s": [1, 2, 3]})
    full = pd.DataFrame({"experiment": ["x", "y"], "key": ["9", "3"], "quick": [False, True], "jct_s": [9, 4]})
    merged = merge_points([quick, full])
    assert merged.experiment.tolist() == ["x", "y"]  # first-seen experiment order
    assert merged.jct_s.tolist() == [9, 4]  # x's quick rows dropped; y's point rerun: the last row wins


def test_heartbeat_reports_progress_and_leaves_the_simulation_untouched(monkeypatch, capsys):
    from dpsim import api
    from dpsim.reproduce.tasks import HEARTBEAT_ENV, _simulate

    scenario = api.with_overrides(api.load_scenario("scenarios/paper/ds27b-1p1d.yaml"),
                                  workload={"agents": 24, "max_turns": 12})
    quiet, _ = _simulate(scenario, "quiet")
    monkeypatch.setenv(HEARTBEAT_ENV, "0.002")
    loud, sim = _simulate(scenario, "ds27b check")
    lines = [x for x in capsys.readouterr().err.splitlines() if "ds27b check:" in x]
    assert lines, "no progress line from a run longer than the heartbeat"
    assert f"/{sim.turns_total} turns" in lines[-1] and "turns/s" in lines[-1]
    wall = {"wall_s", "turns_per_wall_s"}  # the only fields allowed to differ between two runs
    assert {k: v for k, v in loud.summary.items() if k not in wall} == \
        {k: v for k, v in quiet.summary.items() if k not in wall}


def test_heartbeat_reports_each_capacity_trial(tmp_path):
    args = ["reproduce", "--quick", "--only", "capacity-ds27b", "--where", "policy.system=basic", "--no-figures",
            "--jobs", "1"]
    quiet = CliRunner().invoke(main, args + ["--heartbeat", "0", "--out", str(tmp_path / "q")])
    loud = CliRunner().invoke(main, args + ["--heartbeat", "1", "--out", str(tmp_path / "l")])
    assert quiet.exit_code == loud.exit_code == 0, loud.output
    trials = [x for x in loud.output.splitlines() if "capacity-ds27b basic" in x and ": trial APS " in x]
    assert len(trials) >= 2 and not [x for x in quiet.output.splitlines() if ": trial APS " in x]
    assert (tmp_path / "q" / "points.csv").read_bytes() == (tmp_path / "l" / "points.csv").read_bytes()


@pytest.mark.parametrize("content, message", [(b"x\x00\xff\xfe", "UnicodeDecodeError"), (b"", "EmptyDataError"),
                                              (b"a,b\n1,2\n", "column 'experiment' missing")])
def test_validation_report_on_a_file_that_is_not_points_csv(tmp_path, content, message):
    bad = tmp_path / "points.csv"
    bad.write_bytes(content)
    result = CliRunner().invoke(main, ["validation-report", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output and message in result.output
    assert "Traceback" not in result.output


def test_cache_key_covers_the_model_source_and_the_measuring_tasks_but_not_the_command_lines():
    from dpsim.reproduce.cache import hashed_sources

    names = {path.relative_to(Path("dpsim").resolve()).as_posix() for path in hashed_sources()}
    for model in ("kernel/resources/net.py", "kernel/simulation.py", "kernel/engines/prefill.py",
                  "kernel/policies/scheduler.py", "kernel/resources/gpu.py", "workload/synthetic.py",
                  "planning/capacity.py", "scenario/config.py", "reproduce/tasks.py"):
        assert model in names, model
    for presentation in ("cli/app.py", "cli/reproduce.py", "viz/plots.py", "tools/bench.py", "bench.py",
                         "reproduce/report.py", "reproduce/figures.py", "reproduce/compare.py"):
        assert Path("dpsim", presentation).exists(), presentation  # a real module, so its absence below means something
        assert presentation not in names, presentation


def test_skip_done_resumes_from_a_points_table(tmp_path):
    """--skip-done runs only the points without an ok row in the given points.csv (a fresh checkout
    resumes from the committed table, without the cache); a failed row is not done."""
    args = ["reproduce", "--quick", "--only", "offline-ds27b", "--where", "workload.agents=16", "--no-figures",
            "--jobs", "1"]
    first = CliRunner().invoke(main, args + ["--where", "workload.mal=64K", "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    done = pd.read_csv(tmp_path / "a" / "points.csv", dtype={"key": str})
    assert len(done) == 3
    listed = CliRunner().invoke(main, args + ["--list", "--skip-done", str(tmp_path / "a" / "points.csv")])
    assert re.search(r"offline-ds27b +3 points", listed.output), listed.output
    rest = CliRunner().invoke(main, args + ["--skip-done", str(tmp_path / "a" / "points.csv"),
                                            "--out", str(tmp_path / "b")])
    assert rest.exit_code == 0, rest.output
    ran = pd.read_csv(tmp_path / "b" / "points.csv", dtype={"key": str})
    assert len(ran) == 3 and set(ran.mal) == {32768} and not set(ran.key) & set(done.key)
    done.loc[0, "status"] = "error"
    done.to_csv(tmp_path / "failed.csv", index=False)
    listed = CliRunner().invoke(main, args + ["--list", "--where", "workload.mal=64K", "--skip-done",
                                              str(tmp_path / "failed.csv")])
    assert re.search(r"offline-ds27b +1 points", listed.output), listed.output
    missing = CliRunner().invoke(main, args + ["--list", "--skip-done", str(tmp_path / "nowhere.csv")])
    assert missing.exit_code == 2 and "nowhere.csv: file not found" in missing.output


def test_drop_stale_removes_rows_whose_experiment_changed(tmp_path):
    run = CliRunner().invoke(main, ["reproduce", "--quick", "--only", "cache-compute", "--no-figures", "--jobs", "1",
                                    "--out", str(tmp_path / "a")])
    assert run.exit_code == 0, run.output
    rows = pd.read_csv(tmp_path / "a" / "points.csv", dtype={"key": str})
    old = rows.head(2).copy()
    old["key"] = ["0000000000000000", "1111111111111111"]  # as if the experiment file had changed since
    pd.concat([old, rows]).to_csv(tmp_path / "mixed.csv", index=False)
    kept = CliRunner().invoke(main, ["validation-report", str(tmp_path / "mixed.csv"), "--merged", str(tmp_path / "k.csv")])
    dropped = CliRunner().invoke(main, ["validation-report", str(tmp_path / "mixed.csv"), "--drop-stale",
                                        "--merged", str(tmp_path / "d.csv")])
    assert kept.exit_code == dropped.exit_code == 0, dropped.output
    assert len(pd.read_csv(tmp_path / "k.csv")) == len(rows) + 2
    assert pd.read_csv(tmp_path / "d.csv", dtype={"key": str}).key.tolist() == rows.key.tolist()
    assert dropped.output.count("dropped stale row: cache-compute") == 2


def test_a_table_assembled_over_profiles_says_which_experiments_ran_under_which():
    from dpsim.reproduce.report import validation_markdown

    points = pd.DataFrame([
        {"experiment": "offline-ds660b", "model": "ds660b", "layout": "2P4D",
         "policy": "basic", "mal": 65536, "agents": 8, "jct_s": 20.0, "status": "ok",
         "profile": "scenarios/paper/testbed-v3.yaml"},
        {"experiment": "offline-ds660b", "model": "ds660b", "layout": "2P4D",
         "policy": "dualpath", "mal": 65536, "agents": 8, "jct_s": 10.0, "status": "ok",
         "profile": "scenarios/paper/testbed-v3.yaml"},
        {"experiment": "scale-offline", "model": "ds660b", "layout": "2P4D",
         "policy": "dualpath", "scale": 1, "mal": 49152, "jct_s": 3000.0, "status": "ok",
         "profile": "scenarios/paper/testbed.yaml"},
    ])
    items, causes = load_published("scenarios/paper/published.yaml")
    text = validation_markdown(points, items, causes)
    assert ("Experiments per profile: `scenarios/paper/testbed-v3.yaml`: offline-ds660b; "
            "`scenarios/paper/testbed.yaml`: scale-offline.") in text
    one = validation_markdown(points[points.experiment == "offline-ds660b"], items, causes)
    assert "Experiments per profile" not in one  # one profile: the line above it says it

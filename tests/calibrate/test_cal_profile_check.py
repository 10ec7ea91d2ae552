"""Profile building and the closure check, on synthetic samples whose truth is known."""

import numpy as np
import pytest
import yaml

from calibrate.check import closure, closure_gates, host_copy, profile_scenario, simulate_loader
from calibrate.errors import CalibrateError
from calibrate.measure import log_sizes
from calibrate.priority import priority_closure, simulate_flows
from calibrate.profile import build_profile, fit_samples, hardware_values, load_profile, write_profile

pytest.importorskip("dpsim.kernel.resources.net", reason="closure needs dpsim.kernel.resources.net")

STORAGE_BW, IO = 2.5e7, 300e-6
COMPUTE_BW, LAT = 1e8, 100e-6


def link_samples(link, alpha, beta, seed, reps=6, kind="transport", op="read"):
    rng = np.random.default_rng(seed)
    out = []
    for size in log_sizes("16KiB", "2MiB"):
        for rep in range(reps):
            t = (alpha + size / beta) * (1 + 0.01 * rng.standard_normal())
            out.append({"kind": kind, "link": link, "op": op, "size": size, "elapsed_s": t, "count": 1, "rep": rep,
                        "depth": 1, "concurrency": 1, "bytes": size})
    return out


def synthetic_samples():
    s = [{"kind": "meta", "host": "test", "date": "2026-11-23", "calibrate": "0.1.0"}]
    s += link_samples("storage_pe", IO, STORAGE_BW, 1)
    s += link_samples("storage_de", IO, STORAGE_BW, 2)
    s += link_samples("compute", LAT, COMPUTE_BW, 3, op="write")
    return s


@pytest.fixture
def profile_path(tmp_path):
    samples = synthetic_samples()
    prof = build_profile(fit_samples(samples, n_boot=50), samples, storage_nic=2 * STORAGE_BW)
    path = tmp_path / "p.yaml"
    write_profile(prof, path)
    return path


def test_profile_has_dpsim_hardware_keys(profile_path):
    prof = load_profile(profile_path)
    hw = prof["hardware"]
    assert set(hw) >= {"storage_nic", "storage", "compute_nic"}
    assert hw["storage"]["read_efficiency"] == pytest.approx(0.5, rel=0.02)
    vals = hardware_values(prof)
    assert vals["storage_bw"] == pytest.approx(STORAGE_BW, rel=0.02)
    assert vals["io_overhead"] == pytest.approx(IO, rel=0.15)
    assert vals["compute_bw"] == pytest.approx(COMPUTE_BW, rel=0.02)
    cal = prof["calibration"]
    assert cal["provenance"]["host"] == "test"
    assert cal["links"]["compute"]["samples"] == 15 * 6
    lo, hi = cal["links"]["storage_pe"]["bandwidth_ci95_Bps"]
    assert lo <= cal["links"]["storage_pe"]["bandwidth_Bps"] <= hi
    assert cal["links"]["storage_pe"]["holdout_mape"] < 0.05
    # the profile is plain YAML a scenario can include (unit strings with SI meaning)
    text = profile_path.read_text()
    assert "include: [profiles/" in text
    assert isinstance(yaml.safe_load(text)["hardware"]["compute_nic"]["bandwidth"], str)


def _experiment(depth=2, paths="both", requests=12, block=1 << 20, nblk=4):
    cfg = {"block_size": block, "layers": 8, "blocks_per_request": nblk, "requests": requests, "paths": paths,
           "depth": depth, "files": "blocks", "seed": 1, "model": None, "transport": "tcp"}
    assign = ["pe" if i % 2 == 0 else "de" for i in range(requests)] if paths == "both" else [paths] * requests
    reqs = [{"kind": "loader", "experiment": "e1", "request": i, "path": p, "bytes": block * nblk}
            for i, p in enumerate(assign)]
    return cfg, reqs


def measured_from(profile_path, experiments, scale=1.0):
    """Synthetic loader records: each experiment as the profile predicts it, times x scale."""
    prof = load_profile(profile_path)
    scenario = profile_scenario(prof)
    out = []
    for eid, (cfg, reqs) in experiments.items():
        pred = simulate_loader(cfg, reqs, scenario, host_copy(prof))
        out += [{"kind": "experiment", "what": "loader", "experiment": eid, "config": cfg},
                {"kind": "loader_total", "experiment": eid}]
        s = scale[eid] if isinstance(scale, dict) else scale
        for r in reqs:
            t0, t1 = pred[r["request"]]
            out.append({**r, "experiment": eid, "t_submit": t0 * s, "t_done": t1 * s, "elapsed_s": (t1 - t0) * s})
    return out


def edited_profile(profile_path, tmp_path, section, key, factor):
    """The profile with hardware.SECTION.KEY (a bandwidth or a fraction) multiplied by factor."""
    from dpsim.scenario.units import parse_bandwidth

    prof = load_profile(profile_path)
    value = prof["hardware"][section][key]
    prof["hardware"][section][key] = (f"{parse_bandwidth(value) * factor / 1e6:.9g}MB/s" if isinstance(value, str)
                                      else value * factor)
    path = tmp_path / f"{section}-{key}-{factor}.yaml"
    write_profile(prof, path)
    return str(path)


def gate_failures(profile, samples, tolerance=0.05):
    return [g.name for g in closure_gates(closure(profile, samples), tolerance) if not g.passed]


def test_closure_is_exact_on_its_own_prediction_and_sees_a_10pc_error(profile_path):
    exps = {"e1": _experiment(depth=1), "e2": _experiment(depth=2)}
    samples = measured_from(profile_path, exps)
    res = closure(str(profile_path), samples)
    assert abs(res["worst_experiment_rel_err"]) < 1e-6 and res["mean_abs_rel_err"] < 1e-6
    assert not gate_failures(str(profile_path), samples)
    res = closure(str(profile_path), measured_from(profile_path, exps, 1.1))
    assert res["worst_experiment_rel_err"] == pytest.approx(1 / 1.1 - 1, rel=1e-3)
    # an interrupted experiment (no loader_total record) is left out, not compared half-done
    with pytest.raises(CalibrateError):
        closure(str(profile_path), [r for r in samples if r["kind"] != "loader_total"])


def test_errors_of_opposite_sign_do_not_cancel(profile_path):
    """One experiment 7 % slow and one 7 % fast: their summed makespans would agree; per experiment
    the gate fails, and names the experiment."""
    exps = {"slow": _experiment(depth=1), "fast": _experiment(depth=2)}
    samples = measured_from(profile_path, exps, {"slow": 1.07, "fast": 0.93})
    gates = closure_gates(closure(str(profile_path), samples), 0.05)
    assert [g.name for g in gates if not g.passed] == ["worst experiment", "worst path mean completion"]
    assert "fast" in gates[0].line() or "slow" in gates[0].line()


@pytest.mark.parametrize("section,key,factor", [("storage", "read_efficiency", 1.1),
                                                ("storage", "read_efficiency", 0.9),
                                                ("compute_nic", "bandwidth", 1.1),
                                                ("compute_nic", "bandwidth", 0.9)])
def test_closure_fails_for_a_profile_10pc_off(profile_path, tmp_path, section, key, factor):
    """Measured: the true hardware (link sweeps at the true rates, loader runs as the correct
    profile predicts them). A profile whose storage or compute rate is 10 % off fails the gate."""
    samples = synthetic_samples() + measured_from(profile_path, {"e1": _experiment(depth=1),
                                                                 "e2": _experiment(depth=2)})
    assert not gate_failures(str(profile_path), samples)
    wrong = edited_profile(profile_path, tmp_path, section, key, factor)
    assert "worst experiment" in gate_failures(wrong, samples)


def test_compute_bound_loader_run_sees_a_wrong_compute_rate(profile_path, tmp_path):
    """Without any link sweep: a DE-only loader run on a compute link slower than storage (so the
    compute link binds) fails the gate when the profile's compute rate is 10 % high."""
    slow_compute = edited_profile(profile_path, tmp_path, "compute_nic", "bandwidth", 0.2)  # 20 MB/s < 25 MB/s
    samples = measured_from(slow_compute, {"de": _experiment(depth=2, paths="de")})
    assert not gate_failures(slow_compute, samples)
    wrong = edited_profile(slow_compute, tmp_path, "compute_nic", "bandwidth", 1.1)
    assert gate_failures(wrong, samples) == ["worst experiment", "worst path mean completion"]


def test_dpsim_prediction_beats_bytes_over_bandwidth_where_latency_matters(profile_path):
    """With a 300 us per-read overhead and depth 1, the naive estimate (bytes over bandwidth) is
    low; dpsim's storage service model (rate from io_overhead and queue depth) is exact here."""
    samples = measured_from(profile_path, {"e1": _experiment(depth=1, block=256 << 10)})
    res = closure(str(profile_path), samples)
    assert abs(res["model_worst_loader_rel_err"]) < 1e-6
    assert res["naive_worst_rel_err"] < -0.02


def test_both_paths_add_storage_bandwidth(profile_path):
    prof = load_profile(profile_path)
    scenario, copy = profile_scenario(prof), host_copy(prof)
    cfg, reqs = _experiment(paths="both", requests=16)
    both = max(t for _, t in simulate_loader(cfg, reqs, scenario, copy).values())
    cfg1, reqs1 = _experiment(paths="pe", requests=16)
    one = max(t for _, t in simulate_loader(cfg1, reqs1, scenario, copy).values())
    assert one / both == pytest.approx(2.0, rel=0.1)


def test_closure_without_loader_records_is_an_error(profile_path):
    with pytest.raises(CalibrateError):
        closure(str(profile_path), synthetic_samples())


def test_priority_simulation_strict_priority():
    cap = 5e7
    ends = simulate_flows([{"bytes": 5e7, "t_start": 0.0, "priority": 0x10010},
                           {"bytes": 5e7, "t_start": 0.0, "priority": 0x10020}], cap, 0.01)
    assert ends[0] == pytest.approx(1 / 0.99, rel=1e-6)
    assert ends[1] == pytest.approx(2.0, rel=1e-6)
    samples = [
        {"kind": "priority", "group": "a", "flow": 0, "priority": 0x10020, "bytes": 5e7, "t_start": 0.0,
         "elapsed_s": 1.0},
        {"kind": "priority", "group": "b", "flow": 0, "priority": 0x10010, "bytes": 5e7, "t_start": 0.0,
         "elapsed_s": 1.0},
        {"kind": "priority", "group": "b", "flow": 1, "priority": 0x10020, "bytes": 5e7, "t_start": 0.0,
         "elapsed_s": 2.0},
    ]
    res = priority_closure(samples, cap, 0.01)
    assert abs(res["max_abs_slowdown_err"]) < 1e-3
    samples[2]["elapsed_s"] = 1.5  # a fair-share result would not match strict priority
    assert priority_closure(samples, cap, 0.01)["max_abs_slowdown_err"] > 0.2


def test_unequal_flows_separate_strict_priority_from_fair_sharing():
    """Equal flows started together end at 2x alone under both disciplines; a 4:1 high:low pair
    gives the low flow 5x under strict priority and 2x under fair sharing."""
    cap = 5e7
    equal = [{"bytes": 5e7, "t_start": 0.0, "priority": 1}, {"bytes": 5e7, "t_start": 0.0, "priority": 2}]
    fair = {1: "low", 2: "low"}
    assert simulate_flows(equal, cap, 0.01)[1] == pytest.approx(simulate_flows(equal, cap, 0.01, fair)[1], rel=1e-6)
    unequal = [{"bytes": 4e7, "t_start": 0.0, "priority": 1}, {"bytes": 1e7, "t_start": 0.0, "priority": 2}]
    alone = 1e7 / cap
    assert simulate_flows(unequal, cap, 0.01)[1] / alone == pytest.approx(5.0, rel=0.01)
    assert simulate_flows(unequal, cap, 0.01, fair)[1] / alone == pytest.approx(2.0, rel=1e-6)


def test_scenario_includes_the_profile(profile_path, tmp_path):
    loading = pytest.importorskip("dpsim.scenario.loading", reason="scenario loading needs dpsim.scenario.loading")
    scen = tmp_path / "s.yaml"
    scen.write_text(f"include: [{profile_path}]\ncluster: {{prefill_nodes: 1, decode_nodes: 1}}\nmodel: {{name: ds27b}}\n")
    s = loading.load_scenario(scen)
    vals = hardware_values(load_profile(profile_path))
    assert s.hardware.compute_nic.bandwidth == pytest.approx(vals["compute_bw"], rel=1e-5)
    assert s.hardware.storage_nic.bandwidth * s.hardware.storage.read_efficiency == pytest.approx(vals["storage_bw"],
                                                                                                  rel=1e-5)
    assert s.hardware.storage.io_overhead == pytest.approx(vals["io_overhead"], rel=1e-5)
    assert s.calibration["tool"] == "dpsim-calibrate"


@pytest.mark.parametrize("name", ["testbed-netns.yaml", "local-odirect-ds27b.yaml"])
def test_committed_profiles_load(name):
    from pathlib import Path

    config = pytest.importorskip("dpsim.scenario.config", reason="scenario loading needs dpsim.scenario.config")
    path = Path(__file__).resolve().parents[2] / "scenarios" / "profiles" / name
    prof = load_profile(path)
    assert prof["calibration"]["provenance"]["host"]
    data = {"cluster": {"prefill_nodes": 1, "decode_nodes": 1}, "model": {"name": "ds27b"},
            "hardware": prof["hardware"], "calibration": prof["calibration"]}
    s = config.validate_scenario(data)
    assert s.hardware.storage_nic.bandwidth > 0


def test_perftest_comparison(tmp_path):
    import json

    from calibrate.check import perftest_compare

    pt = tmp_path / "pt.json"
    pt.write_text(json.dumps({"results": [{"MsgSize": 65536, "BW_average": 1000.0}]}))  # MiB/s
    samples = [{"kind": "transport", "size": 65536, "bytes": 65536 * 10, "elapsed_s": 65536 * 10 / (500 * 2**20)}]
    text = perftest_compare(str(pt), samples)
    assert "ratio 0.500" in text


def test_queue_depth_plateau_goes_into_the_profile():
    """A device one stream cannot fill: the plateau becomes the bandwidth, queue_depth where it is
    reached, and io_overhead keeps a depth-1 Full Block read exact."""
    block, alpha, beta1, plateau = 1 << 20, 200e-6, 5e8, 1.5e9
    s = link_samples("storage", alpha, beta1, 5, kind="storage")
    for depth in (1, 2, 4, 8, 16):
        agg = min(plateau, depth * block / (alpha + block / beta1))
        for rep in range(3):
            s.append({"kind": "storage", "link": "storage", "op": "read", "size": block, "depth": depth,
                      "concurrency": 1, "count": 64, "bytes": 64 * block, "elapsed_s": 64 * block / agg, "rep": rep,
                      "mode": "depth"})
    prof = build_profile(fit_samples(s, n_boot=30), s)
    vals = hardware_values(prof)
    assert vals["storage_bw"] == pytest.approx(plateau, rel=0.02)
    assert prof["hardware"]["storage"]["queue_depth"] == 4
    one_read = vals["io_overhead"] + block / vals["storage_bw"]
    assert one_read == pytest.approx(alpha + block / beta1, rel=0.03)
    assert any("plateau" in n for n in prof["calibration"]["notes"])


def test_profile_that_is_binary_or_missing_is_one_located_error(tmp_path):
    from calibrate.errors import CalibrateError

    binary = tmp_path / "profile.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(CalibrateError, match=f"{binary}: not a text file"):
        load_profile(binary)
    with pytest.raises(CalibrateError, match="missing.yaml: profile not found"):
        load_profile(tmp_path / "missing.yaml")


def test_check_command_names_the_gate_that_failed(profile_path, tmp_path):
    import json

    from click.testing import CliRunner

    from calibrate.cli import main

    raw = tmp_path / "loader.jsonl"
    samples = measured_from(profile_path, {"e1": _experiment(depth=1)}, 1.08)
    raw.write_text("".join(json.dumps(r) + "\n" for r in samples))
    res = CliRunner().invoke(main, ["check", str(profile_path), "--raw", str(raw)])
    assert res.exit_code == 1
    assert "closure failed: worst experiment: -7.41 % (e1)" in res.output
    ok = CliRunner().invoke(main, ["check", str(profile_path), "--raw", str(raw), "--tolerance", "0.08"])
    assert ok.exit_code == 0 and "pass: worst experiment" in ok.output


def test_a_gpu_profile_is_a_scenario_dpsim_accepts():
    """H2D copies fitted: the profile keeps the bandwidth in calibration.links.h2d (dpsim has no such
    hardware key: an H2D crosses the compute NIC loopback) and validates as a scenario."""
    config = pytest.importorskip("dpsim.scenario.config", reason="scenario loading needs dpsim.scenario.config")
    s = link_samples("h2d", 10e-6, 2e10, 7, kind="gpu", op="h2d")
    prof = build_profile(fit_samples(s, n_boot=20), s)
    assert set(prof["hardware"]["gpu"]) == {"copy_submit_overhead"}
    assert prof["calibration"]["links"]["h2d"]["bandwidth_Bps"] == pytest.approx(2e10, rel=0.02)
    data = {"cluster": {"prefill_nodes": 1, "decode_nodes": 1}, "model": {"name": "ds27b"}, **prof}
    assert config.validate_scenario(data).hardware.gpu.copy_submit_overhead == pytest.approx(10e-6, rel=0.1)

"""Every example of issue 20 pinned: bad input gets one located error line (or a warning), never a
traceback, silent nonsense or a hang. See docs/validation-of-inputs.md."""

from __future__ import annotations

import gzip
import json

import pytest
import yaml
from click.testing import CliRunner

from calibrate.cli import main as calibrate_main
from dpsim import api
from dpsim.cli.app import main
from dpsim.kernel import guard

QUICK = "scenarios/quickstart.yaml"
RUNNER = CliRunner()


def _error(args, cli=main) -> str:
    """The one error line of a failing call (and that it is one clean line)."""
    result = RUNNER.invoke(cli, args)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.lower().startswith(("error", "dpsim-calibrate:"))]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "cluster": {"prefill_nodes": 1, "decode_nodes": 1},
                                    "model": {"name": "ds27b"},
                                    "workload": {"mal": "32K", "agents": 1, "max_turns": 2}}))
    return path


# ------------------------------------------------------------------------- non-finite quantities
@pytest.mark.parametrize("field", ["hardware.compute_nic.bandwidth", "hardware.storage_nic.bandwidth",
                                   "hardware.host.memory_bandwidth"])
@pytest.mark.parametrize("value,expected", [(".inf", "not a finite"), (".nan", "not a finite"),
                                            ("1e400Gbps", "not a finite"), ("1e-300Gbps", "outside the physical range"),
                                            ("400", "give a unit")])
def test_bandwidths_must_be_finite_with_a_unit_and_in_range(tiny, field, value, expected):
    line = _error(["validate", str(tiny), "--set", f"{field}={value}"])
    assert field in line and expected in line


@pytest.mark.parametrize("field,value", [("hardware.gpu.prefill_pass_overhead", "1e400s"),
                                         ("workload.tool_latency", "1e300h"), ("slo.ttft", ".inf"),
                                         ("hardware.gpu.hbm_capacity", ".nan"), ("hardware.gpu.hbm_capacity", "1e400GB"),
                                         ("hardware.gpu.peak_flops_fp8", ".inf"), ("hardware.gpu.peak_flops_fp8", "990"),
                                         ("workload.time_scale", ".inf"), ("policy.z_slack", ".nan"),
                                         ("hardware.storage.read_efficiency", "1e-300"), ("run.seed", "-1")])
def test_times_sizes_flops_and_plain_numbers_are_finite_and_in_range(tiny, field, value):
    assert field in _error(["validate", str(tiny), "--set", f"{field}={value}"])


@pytest.mark.parametrize("field", ["workload.agents", "hardware.storage_nic.count", "hardware.gpu.gemm_efficiency",
                                   "workload.time_scale", "cluster.prefill_nodes"])
def test_a_boolean_is_no_count_or_fraction(tiny, field):
    assert "boolean" in _error(["validate", str(tiny), "--set", f"{field}=true"])


@pytest.mark.parametrize("value", ["100", "1M"])
def test_mal_must_name_a_synthetic_set(tiny, value):
    assert "workload.mal" in _error(["validate", str(tiny), "--set", f"workload.mal={value}"])


def test_empty_trace_name_is_refused(tiny):
    assert "workload.trace" in _error(["validate", str(tiny), "--set", "workload.trace=''"])


def test_max_sim_time_that_simulates_nothing_is_refused(tiny, tmp_path):
    assert "run.max_sim_time" in _error(["validate", str(tiny), "--set", "run.max_sim_time=1ns"])
    line = _error(["run", str(tiny), "--no-plots", "--out", str(tmp_path / "o"), "--set", "run.max_sim_time=2ms"])
    assert "run.max_sim_time" in line and "before any turn finished" in line


# -------------------------------------------------------------------------- plausibility warnings
@pytest.mark.parametrize("override,expected", [("hardware.compute_nic.bandwidth=400GB/s", "did you mean '400Gbps'"),
                                               ("hardware.storage_nic.bandwidth=100Mbps", "usual NIC range"),
                                               ("hardware.compute_nic.bandwidth=20Tbps", "usual NIC range"),
                                               ("slo.tpot=50", "did you mean ms")])
def test_implausible_values_warn_and_strict_makes_them_errors(tiny, override, expected):
    result = RUNNER.invoke(main, ["validate", str(tiny), "--set", override])
    assert result.exit_code == 0 and f"warning: --set: {override.split('=')[0]}" in result.stderr
    assert expected in result.stderr
    assert expected in _error(["validate", str(tiny), "--set", override, "--strict"])


def test_committed_scenarios_have_no_warnings():
    assert api.load_scenario(QUICK).warnings == []
    assert api.load_scenario("scenarios/paper/ds660b-2p4d.yaml").warnings == []


# ------------------------------------------------------------------------------- referenced files
def test_validate_checks_the_trace_file(tiny, tmp_path):
    assert "file not found" in _error(["validate", str(tiny), "--set", "workload.trace=nope.jsonl"])
    (tmp_path / "d.jsonl").mkdir()
    assert "workload.trace" in _error(["validate", str(tiny), "--set", f"workload.trace={tmp_path / 'd.jsonl'}"])
    (tmp_path / "x.jsonl").write_text("hello\n")
    assert "not a recognised trace" in _error(["validate", str(tiny), "--set", f"workload.trace={tmp_path / 'x.jsonl'}"])


# --------------------------------------------------------------------------------- YAML and includes
@pytest.mark.parametrize("include,expected", [("[b.yaml]", "include cycle"), ("5", "expected a file name"),
                                              ("[{x: 1}]", "expected a file name"), ("[a.yaml]", "include cycle")])
def test_include_cycles_and_wrong_types(tmp_path, include, expected):
    (tmp_path / "a.yaml").write_text(f"include: {include}\ncluster: {{prefill_nodes: 1, decode_nodes: 1}}\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\n")
    line = _error(["validate", str(tmp_path / "a.yaml")])
    assert expected in line and str(tmp_path) in line


@pytest.mark.parametrize("text,expected", [
    ("a: &a [*a]\n", "alias that contains itself"),
    ('a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)), "aliases"),
    ("a: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply")])
def test_yaml_alias_bombs_and_deep_nesting_end_quickly(tmp_path, text, expected):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert expected in _error(["validate", str(path)])


# ------------------------------------------------------------------------------------- traces
def _native(tmp_path, body: str, name="t.jsonl"):
    path = tmp_path / name
    path.write_text('{"format": "dpsim-trajectories", "version": 1, "block_size": 64}\n' + body)
    return path


def test_trace_readers_locate_every_failure(tmp_path):
    bad_utf8 = tmp_path / "u.jsonl"
    bad_utf8.write_bytes(b'{"format": "dpsim-trajectories", "version": 1}\n{"id": "\xff\xfe"}\n')
    assert f"{bad_utf8}:2: not UTF-8" in _error(["trace", "stats", str(bad_utf8)])
    corrupt = tmp_path / "c.jsonl.gz"
    corrupt.write_bytes(gzip.compress(_native(tmp_path, '{"id": "a", "turns": [{"append": 5, "out": 1}]}\n')
                                      .read_bytes())[:-12])
    assert str(corrupt) in _error(["trace", "stats", str(corrupt)])
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    assert str(folder) in _error(["trace", "stats", str(folder)])
    deep = _native(tmp_path, "[" * 100000 + "]" * 100000 + "\n", "deep.jsonl")
    assert f"{deep}:2" in _error(["trace", "stats", str(deep)])
    hashes = _native(tmp_path, json.dumps({"id": "a", "turns": [{"in": 100, "out": 1, "hashes": [[1], [2]]}]}) + "\n",
                     "h.jsonl")
    assert f"{hashes}:2: turn 0: 'hashes' must be a list of block ids" in _error(["trace", "stats", str(hashes)])
    nan = _native(tmp_path, '{"id": "a", "arrival_s": NaN, "turns": [{"append": 5, "out": 1}]}\n', "nan.jsonl")
    assert f"{nan}:2" in _error(["trace", "stats", str(nan)])


def test_mooncake_and_claude_code_wrong_types(tmp_path):
    moon = tmp_path / "m.jsonl"
    moon.write_text(json.dumps({"timestamp": 0, "input_length": 100, "output_length": 1, "hash_ids": [[1]]}) + "\n")
    assert f"{moon}:1" in _error(["trace", "stats", str(moon)])
    session = tmp_path / "s.json"
    session.write_text(json.dumps({"block_size": 64, "requests": [{"in": 100, "out": 1, "hash_ids": [{"a": 1}]}]}))
    assert str(session) in _error(["trace", "stats", str(session)])


# ---------------------------------------------------------------------------- options and counts
def test_compare_with_no_policy(tiny):
    assert "--policies" in _error(["compare", str(tiny), "--policies", ","])


@pytest.mark.parametrize("args,expected", [
    (["trace", "synth", "--agents", str(10**30), "-o", "x.jsonl"], "--agents"),
    (["trace", "synth", "--mal", "100", "-o", "x.jsonl"], "--mal"),
    (["capacity", QUICK, "--aps-lo", "1e300"], "--aps-lo"),
    (["capacity", QUICK, "--window", "1e300h"], "--window"),
    (["plan", QUICK, "--nodes", f"2..{10**20}"], "--nodes"),
    (["trace", "convert", "traces/native/claude_code_sample.dpsim.jsonl", "-o", "x.jsonl", "--max-context", ".inf"], "--max-context")])
def test_huge_counts_are_clean_errors(args, expected):
    assert expected in _error(args)


# ----------------------------------------------------------------------------------- calibrate
@pytest.mark.parametrize("hardware,expected", [("{storage_nic: {bandwidth: fast}}", "storage_nic.bandwidth"),
                                               ("[1, 2]", "hardware"), ("{storage_nic: 5}", "storage_nic"),
                                               ("{compute_nic: {bandwidth: 400}}", "give a unit")])
def test_calibrate_check_with_a_bad_profile(tmp_path, hardware, expected):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"hardware: {hardware}\n")
    line = _error(["check", str(profile), "--raw", "scenarios/profiles/testbed-netns/loader.jsonl"], calibrate_main)
    assert expected in line and str(profile) in line


@pytest.mark.parametrize("record,expected", [({"kind": "transport", "size": 4096, "elapsed_s": float("nan")}, "NaN"),
                                             ({"kind": "transport", "size": True, "elapsed_s": 1.0}, "'size'"),
                                             ({"kind": "loader", "experiment": "e"}, "needs"), ([1, 2], "JSON object")])
def test_calibrate_raw_samples_are_checked_when_read(tmp_path, record, expected):
    raw = tmp_path / "r.jsonl"
    raw.write_text(json.dumps(record) + "\n" + json.dumps({"kind": "meta"}) + "\n")
    line = _error(["table", str(raw)], calibrate_main)
    assert f"{raw}:1" in line and expected in line


# ----------------------------------------------------------------------------------- the time guard
def test_the_guard_stops_a_run_that_would_take_forever(tiny, tmp_path):
    line = _error(["run", str(tiny), "--no-plots", "--out", str(tmp_path / "o"),
                   "--set", "hardware.gpu.hbm_bandwidth=1kB/s"])
    assert "time guard" in line


def test_the_guard_leaves_valid_runs_alone():
    scenario = api.load_scenario(QUICK, ["workload.agents=4", "workload.max_turns=3"])
    result = api.run(scenario, progress=False)
    trajectories = api.build_workload(scenario)
    from dpsim.kernel.simulation import Simulation
    bound_s, max_events = guard.bounds(Simulation(scenario, trajectories), [0.0] * len(trajectories))
    assert bound_s > 100 * result.summary["jct_s"] and max_events > 1000 * result.summary["turns"]


@pytest.mark.parametrize("tight,expected", [({"SLACK": 1e-6, "MARGIN_S": 0.0}, "simulated seconds"),
                                            ({"EVENTS_MIN": 0, "EVENTS_PER_TURN": 1, "EVENTS_PER_TOKEN": 0}, "events")])
def test_the_guard_trips_on_a_run_longer_than_its_bound(monkeypatch, tight, expected):
    scenario = api.load_scenario(QUICK, ["workload.agents=4", "workload.max_turns=3"])
    for name, value in tight.items():
        monkeypatch.setattr(guard, name, value)
    with pytest.raises(guard.GuardTripped, match=expected):
        api.run(scenario, progress=False)


# ------------------------------------------------------------------------------- the last resort
def test_an_escaped_exception_is_one_internal_error_line(monkeypatch, tiny, tmp_path):
    import calibrate.cli
    import dpsim.cli.app

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(dpsim.cli.app, "_load", boom)
    result = RUNNER.invoke(main, ["validate", str(tiny)])
    assert result.exit_code == dpsim.cli.app.INTERNAL_ERROR_EXIT
    assert result.stderr.strip() == ("error: internal error (RuntimeError: boom); please report it with the command "
                                     "line (DPSIM_TRACEBACK=1 shows where)")
    assert isinstance(RUNNER.invoke(main, ["validate", str(tiny)], env={"DPSIM_TRACEBACK": "1"}).exception,
                      RuntimeError)
    monkeypatch.setattr(calibrate.cli, "read_samples", boom)
    raw = tmp_path / "r.jsonl"
    raw.write_text("{}\n")
    result = RUNNER.invoke(calibrate_main, ["table", str(raw)])
    assert result.exit_code == calibrate.cli.INTERNAL_ERROR_EXIT and "internal error (RuntimeError: boom)" in result.stderr


def test_an_unwritable_output_folder_is_one_line(tiny, tmp_path):
    (tmp_path / "file").write_text("")
    assert "--out" in _error(["run", str(tiny), "--no-plots", "--out", str(tmp_path / "file" / "x")])


@pytest.mark.parametrize("text,expected", [("cluster: {prefill_nodes: " + "9" * 5000 + ", decode_nodes: 1}\n",
                                            "cannot be read")])
def test_a_yaml_integer_too_long_for_python_is_one_line(tmp_path, text, expected):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert expected in _error(["validate", str(path)])


@pytest.mark.parametrize("override,expected", [("cluster.prefill_nodes=" + "9" * 5000, "cluster.prefill_nodes"),
                                               ("calibration.x=&a [*a]", "alias that contains itself")])
def test_set_values_python_cannot_hold_are_one_line(tiny, override, expected):
    assert expected in _error(["validate", str(tiny), "--set", override])
